"""`python -m tts_gesture.eval`: a checkpoint's speech and motion, measured on held-out material.

    python -m tts_gesture.eval --checkpoint DIR --studio STUDIO [--sentences 50] [--out results.json]

Speech, for each voice of the checkpoint (an offline studio voice), on two sets no training set made with
`--texts fortunes` contains: `--sentences` fortune sentences of the held-out share
(`shared.synth.texts.is_held_out`: jokes and quotations, names, elisions, archaic words) and the project's
48 plain sentences (`SENTENCES`, written for this project):
- round-trip WER: the synthesis transcribed by the project's Whisper-base (CTranslate2, beam 5), beside the
  source voice's own WER and that of the source re-synthesised through the checkpoint's vocoder from its
  own analysis (what the vocoder alone costs);
- MCD (dB, DTW-aligned) against the source voice speaking the same sentence;
- real-time factor: synthesis CPU seconds per second of audio, batch 1, on `--threads` torch threads.

Motion, on the studio folder's `test` split (sequences the training never saw):
- FGD of the free-running synthesis against the real motion, with the project's motion autoencoder
  (checkpoints/motion-ae: trained here, not EMAGE's);
- BC (beat consistency) and L1div of generated and of real motion (trim 0: studio clips are 2-5 s);
- face vertex MSE and LVD through the open rig's face, teacher-forced: decoded with the recording's own
  phoneme durations, pitch and energy, so that frames pair up with the real face (free-running speech has
  its own timing).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from shared import voices
from shared.encoders.whisper_asr import WhisperTranscriber
from shared.rigs.open_rig import load_face_rig, load_open_rig
from shared.synth.texts import SENTENCES, fortune_split, normalize_transcript
from tts_gesture import metrics
from tts_gesture.audio import mel_spectrogram
from tts_gesture.data import SpeakerStats, collate
from tts_gesture.data.studio import load_studio, split_ids, studio_voice
from tts_gesture.inference import Synthesizer
from tts_gesture.motion_ae import load_motion_ae
from tts_gesture.train import teacher_forced


def held_out_sentences(count: int, seed: int = 0) -> list[str]:
    """`count` sentences of the fortune files' held-out share, a seeded draw."""
    pool = list(fortune_split(held_out=True))
    random.Random(seed).shuffle(pool)
    return pool[:count]


def evaluate_speech(synth: Synthesizer, sets: dict[str, list[str]], whisper: WhisperTranscriber) -> dict:
    """{voice: {set name: figures}} (see the module doc)."""
    return {
        speaker.name: {name: _speech_set(synth, speaker.name, texts, whisper) for name, texts in sets.items()}
        for speaker in synth.voices
    }


def _speech_set(synth: Synthesizer, speaker: str, sentences: list[str], whisper: WhisperTranscriber) -> dict:
    rate, voice = synth.sample_rate, studio_voice(speaker)
    rows, cpu, audio_s = [], 0.0, 0.0
    for text in sentences:
        started = time.process_time()
        wave = synth.synthesize(text, speaker).waveform
        cpu += time.process_time() - started
        audio_s += len(wave) / rate
        source = voices.synthesize(text, voice)
        resynthesised = _vocode_source(synth, source.waveform, source.sample_rate)
        rows.append(
            {
                "text": normalize_transcript(text),
                "model": _transcribe(whisper, wave, rate),
                "source": _transcribe(whisper, source.waveform, source.sample_rate),
                "vocoder": _transcribe(whisper, resynthesised, rate),
                "mcd_db": round(
                    metrics.mel_cepstral_distortion(wave, rate, source.waveform, source.sample_rate), 2
                ),
            }
        )
    return {
        "source_voice": voice,
        "sentences": len(rows),
        "wer_percent": {k: _wer(rows, k) for k in ("model", "source", "vocoder")},
        "mcd_db": round(float(np.mean([r["mcd_db"] for r in rows])), 2),
        "rtf": round(cpu / audio_s, 3),
        "audio_s": round(audio_s, 1),
        "rows": rows,
    }


def _transcribe(whisper: WhisperTranscriber, wave: np.ndarray, rate: int) -> str:
    import librosa

    return normalize_transcript(
        whisper(librosa.resample(np.asarray(wave, np.float32), orig_sr=rate, target_sr=16000))
    )


def _wer(rows: list[dict], key: str) -> float:
    import jiwer

    return round(100 * jiwer.wer([r["text"] for r in rows], [r[key] for r in rows]), 1)


@torch.inference_mode()
def _vocode_source(synth: Synthesizer, wave: np.ndarray, rate: int) -> np.ndarray:
    """The source voice analysed as the model's targets are and rendered by the checkpoint's vocoder."""
    import soxr

    audio = synth.config.audio
    wave = soxr.resample(np.asarray(wave, np.float32), rate, audio.sampling_rate).astype(np.float32)
    mel = mel_spectrogram(torch.from_numpy(np.clip(wave, -1, 1)).unsqueeze(0), audio)
    return synth.model.vocode(mel)[0].numpy()


def evaluate_motion(synth: Synthesizer, studio: Path, stats: dict[str, SpeakerStats]) -> dict:
    config = synth.config
    if config.layout != "open-rig":
        return {"skipped": "motion metrics on studio data need an open-rig checkpoint"}
    splits = split_ids(studio)
    records = {r["id"]: r for r in map(json.loads, (studio / "gestures.jsonl").read_text().splitlines())}
    skeleton, face_rig, encoder = load_open_rig().skeleton(), load_face_rig(), load_motion_ae()
    speakers = [s.name for s in config.speakers]
    real_train = [
        np.load(studio / "openrig_30" / f"{sid}.npz")["poses_6d"]
        for sid, kind in list(splits.items())[:200]
        if kind == "train"
    ]
    mean_speed = metrics.mean_joint_speed(metrics.open_rig_positions(p, skeleton) for p in real_train)
    generated, real, predicted_face, real_face = [], [], [], []
    for item in load_studio(studio, config.audio, split="test"):
        if item.speaker not in speakers:
            continue
        record = records[item.id]
        utterance = synth.synthesize(record["text"], item.speaker)
        generated.append((utterance.waveform, utterance.sample_rate, utterance.pose))
        wave, rate = sf.read(studio / "wave16k" / f"{item.id}.wav", dtype="float32")
        real.append((wave, rate, np.load(studio / "openrig_30" / f"{item.id}.npz")["poses_6d"]))
        face = _teacher_forced_face(synth, item, stats)
        frames = min(len(face), len(item.expression))  # the studio's motion may end a frame early
        predicted_face.append(face[:frames])
        real_face.append(item.expression[:frames])

    def positions(rows: list) -> list[np.ndarray]:
        return [metrics.open_rig_positions(pose, skeleton) for _, _, pose in rows]

    gen_positions, real_positions = positions(generated), positions(real)
    upper = [skeleton.names.index(name) for name in metrics.OPEN_RIG_UPPER_BODY]

    def bc(rows: list, pos: list[np.ndarray]) -> float:
        items = [(w, r, p[:, upper]) for (w, r, _), p in zip(rows, pos, strict=True)]
        return round(metrics.beat_consistency(items, mean_speed[upper], trim=0), 4)

    face = metrics.face_errors(
        [metrics.open_rig_face_vertices(f, face_rig) for f in predicted_face],
        [metrics.open_rig_face_vertices(f, face_rig) for f in real_face],
    )
    return {
        "sequences": len(generated),
        "fgd": round(metrics.fgd(encoder, [p for _, _, p in generated], [p for _, _, p in real]), 4),
        "bc": {"generated": bc(generated, gen_positions), "real": bc(real, real_positions)},
        "l1div": {
            "generated": round(metrics.l1_diversity(gen_positions), 4),
            "real": round(metrics.l1_diversity(real_positions), 4),
        },
        "face_mse_m2": float(f"{face['face_mse']:.3e}"),
        "lvd_m": float(f"{face['lvd']:.3e}"),
    }


@torch.inference_mode()
def _teacher_forced_face(synth: Synthesizer, item, stats: dict[str, SpeakerStats]) -> np.ndarray:
    """ARKit weights decoded with the recording's own durations, pitch, energy and onsets and seeded with its
    first motion frames (EMAGE's protocol), cut to its length."""
    batch = collate([item], [s.name for s in synth.config.speakers], stats, synth.config.audio.frame_rate)
    output = teacher_forced(synth.model, batch)
    return output.decoded.gesture.expression[0, : int(batch.motion_lens[0])].numpy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--studio", type=Path, help="data studio folder whose test split scores the motion")
    parser.add_argument("--stats", type=Path, help="a prepared cache's stats.json (teacher-forced face)")
    parser.add_argument("--sentences", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    synth = Synthesizer.from_checkpoint(args.checkpoint, args.device)
    started = time.monotonic()
    report = {
        "command": "python -m tts_gesture.eval " + " ".join(sys.argv[1:] if argv is None else argv),
        "checkpoint": str(args.checkpoint),
        "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads(), "device": args.device},
        "speech": evaluate_speech(
            synth,
            {"held-out fortunes": held_out_sentences(args.sentences), "project sentences": list(SENTENCES)},
            WhisperTranscriber(),
        ),
    }
    if args.studio and args.stats:
        stats = {
            name: SpeakerStats(tuple(v["pitch"]), tuple(v["energy"]))
            for name, v in json.loads(args.stats.read_text())["stats"].items()
        }
        report["motion"] = evaluate_motion(synth, args.studio, stats)
    report["wall_s"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=1) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    summary = {
        voice: {name: {m: v[m] for m in ("wer_percent", "mcd_db", "rtf")} for name, v in sets.items()}
        for voice, sets in report["speech"].items()
    }
    print(json.dumps({"speech": summary, "motion": report.get("motion")}))


if __name__ == "__main__":
    main()
