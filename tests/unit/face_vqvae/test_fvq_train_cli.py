"""The train and eval commands run end to end on a tiny 3DMEAD-like folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from face_vqvae import eval as evaluate
from face_vqvae import train


def _dataset(root: Path) -> None:
    rng = np.random.default_rng(0)
    (root / "param").mkdir(parents=True)
    (root / "wav").mkdir()
    for stem in ("M003_001_0_0", "W009_002_happy_1", "M003_033_0_0", "M005_037_0_0", "M005_028_angry_2"):
        motion = np.zeros((1, 25, 403), np.float32)
        motion[0, :, 300:350] = rng.normal(0, 1, (25, 50))
        np.save(root / "param" / f"{stem}.npy", motion)
        sf.write(root / "wav" / f"{stem}.wav", rng.normal(0, 0.1, 16000).astype(np.float32), 16000)
    np.savez(
        root / "rig.npz",
        template=np.zeros((12, 3)),
        basis=rng.normal(0, 0.01, (53, 12, 3)),
        lip=np.arange(4),
        upper=np.arange(4, 12),
    )


def test_train_both_stages_then_evaluate(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _dataset(data)
    common = ["--config", "tiny", "--data", str(data), "--out", str(out), "--epochs", "1", "--device", "cpu"]
    train.main(["--stage", "1", *common])
    train.main(["--stage", "2", *common, "--prior", str(out / "stage1.pt")])
    assert json.loads((out / "stage2_history.json").read_text())[0]["epoch"] == 0
    evaluate.main(
        [
            "--config",
            "tiny",
            "--checkpoint",
            str(out / "stage2.pt"),
            "--data",
            str(data),
            "--rig",
            str(data / "rig.npz"),
            "--samples",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out / "m.json"),
        ]
    )
    metrics = json.loads((out / "m.json").read_text())
    assert metrics["sequences"] == 2
    assert set(metrics) >= {"lve", "mve", "mee", "ce", "fdd", "diversity"}
