"""asr-sactc on REAL speech: held-out multi-talker mixtures made from shared.evalsets, beside Whisper-base.

Evaluation only; nothing here is trained on. Built deterministically from shared.evalsets (never used for
training: tests/unit/asr_sactc/test_sactc_training_data.py):
- single-talker utterances: the LibriVox and cards clips (pocketsphinx-testdata) as they are, and the
  CALLFRIEND call's two channels cut at their transcript lines (one talker each, 8 kHz telephone);
- two- and three-talker mixtures of utterances by different talkers, each loudness-normalised to -26 LUFS,
  delays chosen for an overlap ratio in each bin 0-20, 20-50, 50-80 % (seeded);
- the pyannote conversation (30 s, 2 talkers) and the CALLFRIEND call (both channels) as recorded;
- non-speech: silence, tones, a sweep, white/pink/brown noise.

Systems, decoded in the same run: the SACTC checkpoint through the serving predictor (Silero VAD on, as
deployed), the demo checkpoint the same way, and single-stream Whisper-base (ctranslate2, beam 5, no speaker
split, no VAD). Scores: meeteval cpWER and the paper's PI-WER (scoring.paper_word_errors, `$` removed) on
mixtures and conversations, WER on single talkers, words emitted on non-speech. Writes
loadtests/results/asr-real.json with the machine, the command and each system's CPU time.

    python loadtests/asr_real_eval.py --checkpoint whisper-base
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "asr-sactc"))

from asr_sactc.scoring import cp_word_errors, overlap_subset, paper_word_errors, word_errors  # noqa: E402

from shared import media  # noqa: E402
from shared.synth.mixtures import choose_delays  # noqa: E402

RATE = 16000
RESULT = Path(__file__).parent / "results" / "asr-real.json"
BINS = {"low": (0.02, 0.2), "mid": (0.2, 0.5), "high": (0.5, 0.8)}
PER_BIN = {2: 10, 3: 4}


def normalize(text: str) -> str:
    """LibriSpeech style for references and hypotheses alike: noise tags, punctuation and word fragments
    dropped, upper case, hyphens split words."""
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text).replace("((", " ").replace("))", " ")
    words = re.sub(r"[^A-Za-z0-9'\- ]+", " ", text).split()
    return " ".join(
        w.upper().replace("-", " ").strip("' ") for w in words if not w.endswith("-") and w.strip("'-")
    )


def _wave(path: Path) -> np.ndarray:
    return media.load_audio(path.read_bytes(), target_rate=RATE)[0]


def load_sets(root: Path, seed: int = 0) -> dict[str, list[dict]]:
    manifest = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    by_id = {item["id"]: item for item in manifest}
    utterances = []  # {"speaker", "wave", "text"}
    for item in manifest:
        if item["kind"] == "single-talker":
            speaker = item["speakers"][0]
            utterances.append(
                {
                    "id": item["id"],
                    "speaker": speaker,
                    "wave": _wave(root / item["audio"]),
                    "text": normalize(item["transcript"]),
                }
            )
    call = by_id["callfriend-know"]
    for channel, speaker in call["channel_speakers"].items():
        wave = _wave(root / call["channel_audio"][channel])
        lines = [line.split(maxsplit=5) for line in (root / call["stm"]).read_text().splitlines()]
        spans: list[list] = []
        for _, _, spk, start, end, *words in lines:
            if spk != speaker:
                continue
            if spans and float(start) - spans[-1][1] < 0.3:
                spans[-1][1], spans[-1][2] = float(end), spans[-1][2] + " " + " ".join(words)
            else:
                spans.append([float(start), float(end), " ".join(words)])
        for k, (start, end, text) in enumerate(spans):
            if len(normalize(text).split()) >= 3:
                utterances.append(
                    {
                        "id": f"callfriend-{channel}-{k}",
                        "speaker": f"callfriend-{speaker}",
                        "wave": wave[round(start * RATE) : round(end * RATE)],
                        "text": normalize(text),
                    }
                )
    for u in utterances:
        u["wave"] = media.normalize_loudness(u["wave"], RATE, -26.0, 0.5)
    rng = np.random.default_rng(seed)
    speakers = sorted({u["speaker"] for u in utterances})
    mixtures = []
    for talkers, count in PER_BIN.items():
        for bin_name, (lo, hi) in BINS.items():
            made = 0
            while made < count:
                chosen = rng.choice(speakers, size=talkers, replace=False)
                parts = []
                for s in chosen:
                    pool = [u for u in utterances if u["speaker"] == s]
                    parts.append(pool[int(rng.integers(len(pool)))])
                lengths = [len(p["wave"]) for p in parts]
                target = float(rng.uniform(lo, hi))
                starts = choose_delays(lengths, target, rng.uniform(0.6, 1.0, size=talkers - 1), 0.02)
                if starts is None:
                    continue
                wave = np.zeros(max(s + n for s, n in zip(starts, lengths, strict=True)), np.float32)
                for s, p in zip(starts, parts, strict=True):
                    wave[s : s + len(p["wave"])] += p["wave"]
                mixtures.append(
                    {
                        "id": f"mix{talkers}-{bin_name}-{made}",
                        "talkers": talkers,
                        "wave": wave * np.float32(0.9 / max(np.abs(wave).max(), 1e-6)),
                        "refs": [p["text"] for p in parts],
                        "sources": [p["id"] for p in parts],
                        "overlap": target,
                    }
                )
                made += 1
    conversations = []
    for item_id in ("pyannote-sample", "callfriend-know"):
        item = by_id[item_id]
        refs: dict[str, list[str]] = {}
        for line in (root / item["stm"]).read_text().splitlines():
            _, _, spk, _, _, *words = line.split(maxsplit=5)
            refs.setdefault(spk, []).append(" ".join(words))
        conversations.append(
            {
                "id": item_id,
                "wave": _wave(root / item["audio"]),
                "refs": [normalize(" ".join(t)) for t in refs.values()],
            }
        )
    t = np.arange(5 * RATE) / RATE
    noise = np.random.default_rng(1).standard_normal(5 * RATE)
    spectrum = np.fft.rfft(noise)
    freqs = np.maximum(np.fft.rfftfreq(noise.size, 1 / RATE), 20.0)
    nonspeech = {
        "silence": np.zeros(5 * RATE),
        "tone-440": 0.3 * np.sin(2 * np.pi * 440 * t),
        "tone-1k-beeps": 0.3 * np.sin(2 * np.pi * 1000 * t) * (np.sin(2 * np.pi * 2 * t) > 0),
        "sweep": 0.3 * np.sin(2 * np.pi * (100 * t + 380 * t**2)),
        "white-noise": 0.1 * noise,
        "pink-noise": np.fft.irfft(spectrum / np.sqrt(freqs), noise.size),
        "brown-noise": np.fft.irfft(spectrum / freqs, noise.size),
    }
    nonspeech_items = [
        {"id": k, "wave": (0.3 * v / np.abs(v).max() if v.any() else v).astype(np.float32)}
        for k, v in nonspeech.items()
    ]
    singles = [u for u in utterances if not u["id"].startswith("callfriend")]
    return {
        "single": singles,
        "mixtures": mixtures,
        "conversations": conversations,
        "nonspeech": nonspeech_items,
    }


class SactcSystem:
    """The serving predictor (VAD on): per-speaker transcripts, one per speaker label."""

    def __init__(self, checkpoint: str, decode: str) -> None:
        from asr_sactc.predictor import AsrSactcPredictor

        self.predictor = AsrSactcPredictor(checkpoint=checkpoint, decode=decode, vad="silero", num_threads=1)
        self.predictor.load()

    def __call__(self, wave: np.ndarray) -> list[str]:
        from orate.v1.common_pb2 import Audio
        from orate.v1.models_pb2 import AsrSactcRequest

        request = AsrSactcRequest(audio=Audio(data=media.encode_wav(wave, RATE)))
        self.predictor.check(request)
        (response,) = self.predictor.predict([request])
        by_label: dict[str, list[str]] = {}
        for segment in response.speakers:
            by_label.setdefault(segment.speaker, []).append(segment.text)
        return [normalize(" ".join(texts)) for texts in by_label.values()]


class WhisperSystem:
    """Single-stream Whisper-base (ctranslate2, beam 5, no timestamps): one transcript per input."""

    def __init__(self) -> None:
        import ctranslate2

        from shared.encoders import WhisperVocabulary, whisper_base_dir

        model_dir = whisper_base_dir()
        self.model = ctranslate2.models.Whisper(str(model_dir), device="cpu", intra_threads=1)
        self.vocab = WhisperVocabulary(model_dir)
        self.prompt = [self.vocab.token_list[i] for i in self.vocab.prompt()]

    def __call__(self, wave: np.ndarray) -> list[str]:
        import ctranslate2

        from shared.encoders import whisper_log_mel

        feats = ctranslate2.StorageView.from_array(whisper_log_mel(wave[: 30 * RATE]).numpy())
        result = self.model.generate(feats, [self.prompt], beam_size=5)
        return [normalize(self.vocab.ids2text(result[0].sequences_ids[0]))]


def evaluate(system, sets: dict[str, list[dict]]) -> dict:
    start = time.process_time()
    out: dict = {"mixtures": {}, "conversations": {}, "single": {}, "nonspeech": {}, "examples": []}
    for talkers in PER_BIN:
        tallies: dict[str, list[int]] = {}
        for item in (m for m in sets["mixtures"] if m["talkers"] == talkers):
            hyps = system(item["wave"])
            cp = cp_word_errors(item["refs"], hyps)
            pi = paper_word_errors(item["refs"], " $ ".join(hyps))
            for key in ("all", overlap_subset(item["overlap"])):
                t = tallies.setdefault(key, [0, 0, 0])
                t[0], t[1], t[2] = t[0] + cp[0], t[1] + pi[0], t[2] + cp[1]
            if len(out["examples"]) < 6 or item["id"].endswith("-0"):
                out["examples"].append({"id": item["id"], "refs": item["refs"], "hyps": hyps})
            out.setdefault("speaker_counts", {}).setdefault(str(talkers), []).append(len(hyps))
        out["mixtures"][f"{talkers}-talker"] = {
            key: {"cpwer": round(100 * c / w, 1), "pi_wer": round(100 * p / w, 1), "words": w}
            for key, (c, p, w) in tallies.items()
        }
    for item in sets["conversations"]:
        hyps = system(item["wave"])
        cp, pi = cp_word_errors(item["refs"], hyps), paper_word_errors(item["refs"], " $ ".join(hyps))
        out["conversations"][item["id"]] = {
            "cpwer": round(100 * cp[0] / cp[1], 1),
            "pi_wer": round(100 * pi[0] / pi[1], 1),
            "hyps": hyps,
        }
    errors: dict[str, list[int]] = {}
    for item in sets["single"]:
        hyp = " ".join(system(item["wave"]))
        tally = errors.setdefault(item["id"].split("-")[0], [0, 0])
        tally[0] += word_errors(item["text"], hyp)
        tally[1] += len(item["text"].split())
    out["single"] = {k: {"wer": round(100 * e / w, 1), "words": w} for k, (e, w) in errors.items()}
    total = [sum(v[0] for v in errors.values()), sum(v[1] for v in errors.values())]
    out["single"]["all"] = {"wer": round(100 * total[0] / total[1], 1), "words": total[1]}
    for item in sets["nonspeech"]:
        out["nonspeech"][item["id"]] = len(" ".join(system(item["wave"])).split())
    out["nonspeech_zero_words_percent"] = round(
        100 * sum(v == 0 for v in out["nonspeech"].values()) / len(out["nonspeech"]), 1
    )
    out["cpu_seconds"] = round(time.process_time() - start, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="whisper-base", help="SACTC checkpoint (name or folder)")
    parser.add_argument("--decode", nargs="+", default=["joint"], help="decodings of --checkpoint")
    parser.add_argument("--evalsets", type=Path, help="a shared.evalsets folder (default: build one)")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    import tempfile

    import torch

    from shared.evalsets import build_evalsets

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.evalsets
        if root is None:
            root = Path(tmp)
            build_evalsets(root)
        sets = load_sets(root)
    systems = {"whisper-base single-stream (ctranslate2)": WhisperSystem}
    for decode in args.decode:
        systems[f"sactc {args.checkpoint} ({decode})"] = lambda d=decode: SactcSystem(args.checkpoint, d)
    if not args.skip_demo:
        systems["sactc demo (joint)"] = lambda: SactcSystem("demo", "joint")
    results = {}
    for name, make in systems.items():
        results[name] = evaluate(make(), sets)
        print(
            name, json.dumps({k: results[name][k] for k in ("mixtures", "single", "nonspeech")}), flush=True
        )
    report = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch_threads": 1,
            "load_average": os.getloadavg(),
        },
        "sets": {
            "mixtures": {f"{t}-talker": sum(m["talkers"] == t for m in sets["mixtures"]) for t in PER_BIN},
            "mixture_bins": {k: f"{100 * lo:.0f}-{100 * hi:.0f} %" for k, (lo, hi) in BINS.items()},
            "single": len(sets["single"]),
            "conversations": [c["id"] for c in sets["conversations"]],
            "nonspeech": [n["id"] for n in sets["nonspeech"]],
        },
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
