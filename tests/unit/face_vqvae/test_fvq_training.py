"""One optimiser step lowers each stage's loss; stage 2 leaves the stage-1 weights untouched."""

from __future__ import annotations

from pathlib import Path

import torch
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.layouts import LAYOUTS
from face_vqvae.losses import MotionPriorLoss
from face_vqvae.model import build_motion_prior
from face_vqvae.train import build_stage, predictor_losses, prior_losses


def _motion(frames: int = 50) -> torch.Tensor:
    """Smooth synthetic motion [1, T, 53] in model space."""
    t = torch.linspace(0, 6, frames)
    return (0.5 + 0.3 * torch.sin(t[:, None] * torch.linspace(0.5, 2.0, 53)))[None]


def _fast(config: FaceVqvaeConfig) -> FaceVqvaeConfig:
    config = config.model_copy(deep=True)
    config.train.lr_stage1 = config.train.lr_stage2 = 1e-3
    return config


def test_stage1_step_lowers_loss(tiny_config: FaceVqvaeConfig) -> None:
    torch.manual_seed(0)
    model, loss_fn, optimizer = build_stage(1, _fast(tiny_config), None, False)
    motion = _motion()

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            return float(prior_losses(model, motion, loss_fn)["total"])

    before = evaluate()
    model.train()
    losses = prior_losses(model, motion, loss_fn)
    assert set(losses) == {"total", "quant", "recons_exp", "recons_jaw"}
    optimizer.zero_grad()
    losses["total"].backward()
    optimizer.step()
    assert evaluate() < before


def test_stage2_step_lowers_loss_and_keeps_prior_frozen(tiny_config: FaceVqvaeConfig, tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = _fast(tiny_config)
    torch.save({"state_dict": build_motion_prior(config).state_dict()}, tmp_path / "stage1.pt")
    model, loss_fn, optimizer = build_stage(2, config, tmp_path / "stage1.pt", False)
    prior_before = {k: v.clone() for k, v in model.motion_prior.state_dict().items()}
    predictor_before = model.feature_predictor.audio_feature_map.weight.clone()
    wave, motion = torch.randn(32000) * 0.1, _motion()
    style = torch.zeros(1, model.feature_predictor.style_embedding.in_features)
    style[0, [0, 3, 11]] = 1.0

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            audio = model.audio_features(wave, num_frames=motion.shape[1])
            return float(predictor_losses(model, audio, motion, style, loss_fn)["total"])

    before = evaluate()
    model.train()
    losses = predictor_losses(
        model, model.audio_features(wave, num_frames=motion.shape[1]), motion, style, loss_fn
    )
    optimizer.zero_grad()
    losses["total"].backward()
    optimizer.step()
    assert evaluate() < before
    assert not torch.equal(model.feature_predictor.audio_feature_map.weight, predictor_before)
    for key, value in model.motion_prior.state_dict().items():
        assert torch.equal(value, prior_before[key]), key


def test_arkit_loss_splits_jaw_blendshapes() -> None:
    layout = LAYOUTS["arkit-52"]
    assert [layout.channel_names[i] for i in layout.jaw_channels] == [
        "jawForward",
        "jawLeft",
        "jawOpen",
        "jawRight",
    ]
    pred, ref = torch.zeros(1, 4, 52), torch.zeros(1, 4, 52)
    pred[..., layout.channel_names.index("jawOpen")] = 1.0
    losses = MotionPriorLoss(layout)(pred, ref, torch.tensor(0.0))
    assert torch.isclose(losses["recons_jaw"], torch.tensor(0.25))
    assert losses["recons_exp"] == 0.0
    assert torch.isclose(losses["total"], torch.tensor(0.1 * 0.25))
