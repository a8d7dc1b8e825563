"""Training under a budget: validation every N steps, and a wall-time limit that still saves the best."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from face_vqvae import train


def _motion_only(root: Path, stems: list[str]) -> None:
    rng = np.random.default_rng(0)
    (root / "param").mkdir(parents=True)
    for stem in stems:
        np.save(root / "param" / f"{stem}.npy", rng.uniform(-1, 1, (20, 53)).astype(np.float32))


def test_val_every_checks_on_a_step_cadence(tmp_path: Path) -> None:
    _motion_only(tmp_path / "data", ["M003_001_0_0", "M003_002_0_0", "M003_003_0_0", "M003_033_0_0"])
    args = ["--stage", "1", "--config", "tiny", "--data", str(tmp_path / "data"), "--out", str(tmp_path)]
    train.main([*args, "--epochs", "2", "--val-every", "2", "--device", "cpu"])
    history = json.loads((tmp_path / "stage1_history.json").read_text())
    assert [h["steps"] for h in history] == [2, 4, 6]  # 3 train items x 2 epochs, checked every 2 steps
    assert (tmp_path / "stage1.pt").is_file()


def test_a_spent_budget_stops_after_one_step_and_saves(tmp_path: Path) -> None:
    _motion_only(tmp_path / "data", ["M003_001_0_0", "M003_002_0_0", "M003_033_0_0"])
    args = ["--stage", "1", "--config", "tiny", "--data", str(tmp_path / "data"), "--out", str(tmp_path)]
    train.main([*args, "--epochs", "5", "--max-minutes", "0", "--device", "cpu"])
    history = json.loads((tmp_path / "stage1_history.json").read_text())
    assert [h["steps"] for h in history] == [1]
    assert (tmp_path / "stage1.pt").is_file()
