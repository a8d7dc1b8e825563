"""ProbTalk3D stage-2 model on the tiny config: shapes, sampling determinism and diversity."""

from __future__ import annotations

import numpy as np
import torch
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.metrics import diversity
from face_vqvae.model import ProbTalk3D


def _latent(model: ProbTalk3D, config: FaceVqvaeConfig, seconds: float = 2.0) -> torch.Tensor:
    wave = torch.randn(int(seconds * 16000)) * 0.1
    style = torch.zeros(1, model.feature_predictor.style_embedding.in_features)
    style[0, [0, 3, 11]] = 1.0
    with torch.no_grad():
        return model.predict_latent(model.audio_features(wave), style)


def test_shapes_at_25_fps(tiny_model: ProbTalk3D, tiny_config: FaceVqvaeConfig) -> None:
    tiny_model.eval()
    z_hat = _latent(tiny_model, tiny_config, seconds=2.0)
    assert z_hat.shape == (1, 50, tiny_config.model.latent_dim)
    motion = tiny_model.sample(
        z_hat, num_samples=3, temperature=0.2, generator=torch.Generator().manual_seed(0)
    )
    assert motion.shape == (1, 3, 50, 53)


def test_argmin_has_zero_diversity_and_sampling_positive(tiny_model: ProbTalk3D, tiny_config) -> None:
    tiny_model.eval()
    z_hat = _latent(tiny_model, tiny_config)
    argmin = tiny_model.sample(z_hat, num_samples=4, temperature=0.0)[0].numpy()
    sampled = tiny_model.sample(z_hat, 4, 0.2, torch.Generator().manual_seed(0))[0].numpy()
    rng = np.random.default_rng(0)
    assert diversity(argmin[..., None], rng) == 0.0
    assert diversity(sampled[..., None], rng) > 0.0


def test_tiny_temperature_matches_argmin_decoding(tiny_model: ProbTalk3D, tiny_config) -> None:
    tiny_model.eval()
    z_hat = _latent(tiny_model, tiny_config)
    argmin = tiny_model.sample(z_hat, 1, None)
    cold = tiny_model.sample(z_hat, 1, 1e-7, torch.Generator().manual_seed(5))
    assert torch.allclose(cold, argmin)


def test_same_seed_same_sample(tiny_model: ProbTalk3D, tiny_config) -> None:
    tiny_model.eval()
    z_hat = _latent(tiny_model, tiny_config)
    first = tiny_model.sample(z_hat, 2, 0.5, torch.Generator().manual_seed(42))
    again = tiny_model.sample(z_hat, 2, 0.5, torch.Generator().manual_seed(42))
    other = tiny_model.sample(z_hat, 2, 0.5, torch.Generator().manual_seed(43))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_motion_prior_stays_frozen(tiny_model: ProbTalk3D) -> None:
    """Its train/eval mode follows the recipe (test_fvq_recipe.py); its weights never train."""
    tiny_model.train()
    assert not any(p.requires_grad for p in tiny_model.motion_prior.parameters())
    assert all(p.requires_grad for p in tiny_model.feature_predictor.parameters())
