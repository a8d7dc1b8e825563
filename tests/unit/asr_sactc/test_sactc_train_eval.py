"""Train and evaluate end to end on a tiny LibriSpeechMix-style set of tone "speech" mixtures."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from asr_sactc.config import load_config
from asr_sactc.data import LibriSpeechMixDataset
from asr_sactc.recognizer import SACTCRecognizer
from asr_sactc.train import train

CONFIGS = Path(__file__).resolve().parents[3] / "services" / "asr-sactc" / "configs"
SR = 16000


def _tones(text: str, rng: np.random.Generator) -> np.ndarray:
    """One 60 ms tone per character (pitch by letter), a short gap for spaces."""
    parts = []
    for ch in text:
        if ch == " ":
            parts.append(np.zeros(int(0.04 * SR), dtype=np.float32))
        else:
            t = np.arange(int(0.06 * SR)) / SR
            parts.append((0.3 * np.sin(2 * np.pi * (200 + 40 * (ord(ch) - 64)) * t)).astype(np.float32))
    return np.concatenate(parts) + 0.01 * rng.standard_normal(sum(map(len, parts))).astype(np.float32)


def _write_set(folder: Path, name: str, pairs: list[tuple[str, str, float]]) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for i, (first, second, delay) in enumerate(pairs):
        wavs = []
        for j, text in enumerate((first, second)):
            path = folder / f"{name}{i}_{j}.wav"
            sf.write(path, _tones(text, rng), SR)
            wavs.append(path.name)
        lines.append(
            json.dumps(
                {
                    "id": f"{name}{i}",
                    "wavs": wavs,
                    "delays": [0.0, delay],
                    "speakers": ["s1", "s2"],
                    "texts": [first, second],
                }
            )
        )
    (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


def test_dataset_mixes_sources_at_their_delays(tmp_path):
    _write_set(tmp_path, "dev", [("AB", "CDE", 0.1)])
    example = LibriSpeechMixDataset(tmp_path / "dev.jsonl")[0]
    assert example.sot_text == "AB $ CDE"
    assert example.speaker_texts == ["AB", "CDE"]
    assert len(example.speech) == int(0.1 * SR) + 3 * int(0.06 * SR)
    assert 0.0 < example.overlap < 1.0


def test_train_then_eval_command_lines(tmp_path):
    _write_set(
        tmp_path, "train", [("AB CD", "EF", 0.2), ("GH", "IJ K", 0.1), ("LM", "NO", 0.3), ("PQ R", "ST", 0.0)]
    )
    _write_set(tmp_path, "dev", [("AB", "CD", 0.1), ("EF", "GH", 0.05)])
    config = load_config(CONFIGS / "tiny.yaml")
    config["train_conf"] |= {"batch_size": 2, "max_epoch": 1}
    out = tmp_path / "exp"
    train(config, tmp_path, out, "cpu", max_steps=2, seed=0)
    log = [json.loads(line) for line in (out / "train.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)
    assert (out / "valid.acc.best.pth").exists() and (out / "last.pth").exists()

    recognizer = SACTCRecognizer(out / "config.yaml", out / "last.pth", decode="greedy")
    assert isinstance(recognizer.transcribe([np.zeros(8000, dtype=np.float32)])[0], list)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_sactc.eval",
            "--config",
            str(out / "config.yaml"),
            "--model",
            str(out / "last.pth"),
            "--data",
            str(tmp_path / "dev.jsonl"),
            "--out",
            str(tmp_path / "eval"),
            "--decode",
            "greedy",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    scores = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert scores["utterances"] == 2 and scores["wer"] >= 0.0
    assert json.loads(result.stdout.strip().splitlines()[-1])["utterances"] == 2
    assert len((tmp_path / "eval" / "hyp.trn").read_text().splitlines()) == 2
