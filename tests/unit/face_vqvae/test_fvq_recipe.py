"""Training recipes: `official` selects checkpoints as upstream does, `project` keeps the best check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from face_vqvae import train
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.model import build_motion_prior
from face_vqvae.train import ValidationMonitor, build_stage


def test_official_monitor_is_a_running_average_never_reset() -> None:
    """Upstream's loss module sums every validation step since training began (no reset), and Lightning logs
    the mean over a check's steps of that running average as `total/val`."""
    official, project = ValidationMonitor("official"), ValidationMonitor("project")
    first, second = [4.0, 2.0], [1.0, 3.0, 2.0]
    assert official(first) == pytest.approx((4 / 1 + 6 / 2) / 2)
    assert official(second) == pytest.approx((7 / 3 + 10 / 4 + 12 / 5) / 3)
    assert project(first) == pytest.approx(3.0)
    assert project(second) == pytest.approx(2.0)


def _noisy_run(tmp_path: Path, recipe: str) -> tuple[list[dict], dict]:
    """Stage 1 with a learning rate high enough that validation goes up and down, checked every step."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    (data / "param").mkdir(parents=True, exist_ok=True)
    for stem in ("M003_001_0_0", "M003_002_0_0", "M003_003_0_0", "M003_033_0_0", "M003_034_0_0"):
        np.save(data / "param" / f"{stem}.npy", rng.uniform(-1, 1, (20, 53)).astype(np.float32))
    config = FaceVqvaeConfig.from_yaml("tiny").model_dump(mode="json")
    config["train"] |= {"recipe": recipe, "lr_stage1": 0.05, "patience": 100}
    (tmp_path / f"{recipe}.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / recipe
    train.main(
        ["--stage", "1", "--config", str(tmp_path / f"{recipe}.yaml"), "--data", str(data), "--out", str(out)]
        + ["--epochs", "3", "--val-every", "1", "--device", "cpu"]
    )
    history = json.loads((out / "stage1_history.json").read_text())
    return history, torch.load(out / "stage1.pt", weights_only=True)


def test_project_recipe_keeps_the_best_check_and_official_the_last(tmp_path: Path) -> None:
    history, saved = _noisy_run(tmp_path, "project")
    best = min(history, key=lambda h: h["val_total"])
    assert best is not history[-1]  # the run is noisy enough for the two rules to differ
    assert saved["val_total"] == best["val_total"]
    history, saved = _noisy_run(tmp_path, "official")
    assert saved["val_total"] == history[-1]["val_total"]  # upstream's last.ckpt


def test_official_recipe_leaves_the_frozen_prior_dropout_on_while_training(
    tiny_config: FaceVqvaeConfig, tmp_path: Path
) -> None:
    torch.save({"state_dict": build_motion_prior(tiny_config).state_dict()}, tmp_path / "stage1.pt")
    motion = torch.rand(1, 30, 53)
    for recipe, dropout in (("project", False), ("official", True)):
        config = tiny_config.model_copy(deep=True)
        config.train.recipe = recipe
        model = build_stage(2, config, tmp_path / "stage1.pt", False)[0].train()
        assert model.motion_prior.training is dropout
        assert not any(p.requires_grad for p in model.motion_prior.parameters())
        with torch.no_grad():
            latents = [model.motion_prior.motion_encoder(motion) for _ in range(2)]
        assert torch.equal(*latents) is not dropout  # dropout perturbs stage 2's latent targets
        assert not model.eval().motion_prior.training  # validation and serving: eval mode
