"""Splits per stage: upstream's stage-1 split files (unseen validation speakers), stage 2's sentence split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from face_vqvae import eval as evaluate
from face_vqvae import train
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.data import stage_dataset

# tiny.yaml's style vocabulary is M003, M005, W009. M032 and M037 are outside it, as upstream's unseen
# stage-1 validation and test speakers (mead-splits-prior/val, /test) are outside its 32-speaker style list.
SPLIT_FILES = {"train": "M003\nM005\nW009\n", "val": "M032\n", "test": "M037\n"}
STEMS = [
    "M003_001_0_0",  # neutral 1-32: stage-2 train
    "M003_034_0_0",  # neutral 33-36: stage-2 val
    "M003_038_0_0",  # neutral 37-40: stage-2 test
    "W009_002_happy_1",  # emotional 1-24: stage-2 train
    "W009_026_happy_1",  # emotional 25-27: stage-2 val
    "M005_029_angry_2",  # emotional 28-30: stage-2 test
    "M032_001_0_0",  # unseen speaker: stage-1 val
    "M032_030_sad_2",
    "M037_005_0_0",  # unseen speaker: stage-1 test
]


def _dataset(root: Path, stems: list[str], split_files: dict[str, str] | None = SPLIT_FILES) -> None:
    rng = np.random.default_rng(0)
    (root / "param").mkdir(parents=True)
    (root / "wav").mkdir()
    for stem in stems:
        np.save(root / "param" / f"{stem}.npy", rng.uniform(-1, 1, (25, 53)).astype(np.float32))
        sf.write(root / "wav" / f"{stem}.wav", rng.normal(0, 0.1, 16000).astype(np.float32), 16000)
    if split_files:
        (root / "identities").mkdir()
        for split, text in split_files.items():
            (root / "identities" / split).write_text(text)


def _keys(root: Path, stage: int, split: str) -> list[str]:
    return [item.key for item in stage_dataset(root, FaceVqvaeConfig.from_yaml("tiny"), stage, split).items]


def test_stage1_takes_every_sentence_of_the_listed_speakers(tmp_path: Path) -> None:
    _dataset(tmp_path, STEMS)
    assert _keys(tmp_path, 1, "train") == [s for s in sorted(STEMS) if s[:4] in ("M003", "M005", "W009")]
    assert _keys(tmp_path, 1, "val") == ["M032_001_0_0", "M032_030_sad_2"]
    assert _keys(tmp_path, 1, "test") == ["M037_005_0_0"]


def test_split_files_leave_stage2_on_the_sentence_split(tmp_path: Path) -> None:
    _dataset(tmp_path, STEMS)
    assert _keys(tmp_path, 2, "train") == ["M003_001_0_0", "W009_002_happy_1"]
    assert _keys(tmp_path, 2, "val") == ["M003_034_0_0", "W009_026_happy_1"]
    assert _keys(tmp_path, 2, "test") == ["M003_038_0_0", "M005_029_angry_2"]


def test_without_split_files_stage1_uses_the_sentence_split(tmp_path: Path) -> None:
    _dataset(tmp_path, STEMS, split_files=None)
    assert _keys(tmp_path, 1, "val") == ["M003_034_0_0", "W009_026_happy_1"]


def test_split_files_train_both_stages_and_evaluate_the_test_sentences(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _dataset(data, STEMS)
    np.savez(
        data / "rig.npz",
        template=np.zeros((6, 3)),
        basis=np.random.default_rng(1).normal(0, 0.01, (53, 6, 3)),
        lip=np.arange(3),
        upper=np.arange(3, 6),
    )
    common = ["--config", "tiny", "--data", str(data), "--out", str(out), "--epochs", "1", "--device", "cpu"]
    train.main(["--stage", "1", *common])
    train.main(["--stage", "2", *common, "--prior", str(out / "stage1.pt")])
    evaluate.main(
        ["--checkpoint", str(out / "stage2.pt"), "--data", str(data), "--rig", str(data / "rig.npz")]
        + ["--samples", "2", "--device", "cpu", "--out", str(out / "m.json")]
    )
    assert json.loads((out / "m.json").read_text())["sequences"] == 2


def test_an_empty_validation_split_is_an_error_with_the_reason(tmp_path: Path) -> None:
    _dataset(tmp_path / "sentences", ["M003_001_0_0", "M003_002_0_0"], split_files=None)
    args = ["--stage", "1", "--config", "tiny", "--out", str(tmp_path / "out"), "--device", "cpu"]
    with pytest.raises(SystemExit, match=r"no val sequences.*sentences 33-36"):
        train.main([*args, "--data", str(tmp_path / "sentences")])
    _dataset(tmp_path / "files", ["M003_001_0_0"], split_files={"train": "M003\n", "val": "M032\n"})
    with pytest.raises(SystemExit, match=r"no val sequences.*M032"):
        train.main([*args, "--data", str(tmp_path / "files")])
    assert not (tmp_path / "out" / "stage1.pt").exists()
