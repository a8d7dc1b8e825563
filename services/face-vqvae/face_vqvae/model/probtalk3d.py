"""Stage 2 of ProbTalk3D: speech + style -> latent ẑ -> frozen stage-1 codebook and decoder -> face motion."""

from __future__ import annotations

import torch
from torch import nn

from face_vqvae.audio_encoders import AudioEncoder, pair_frames
from face_vqvae.config import ModelConfig
from face_vqvae.model.feature_predictor import FeaturePredictor
from face_vqvae.model.motion_prior import MotionPrior


class ProbTalk3D(nn.Module):
    """Upstream `VqvaePredict`: `feature_extractor` (speech encoder), `feature_predictor`, `motion_prior`.

    The motion prior is frozen (no gradients); gradients reach the predictor through the quantizer's
    straight-through estimator and the frozen decoder. It stays in eval mode, so its dropout never perturbs
    the latent targets, unless `prior_dropout`: upstream's Lightning loop puts the whole model, prior
    included, back in train mode for every training epoch (the `official` recipe reproduces that).
    """

    def __init__(
        self,
        feature_extractor: AudioEncoder,
        nfeats: int,
        style_dim: int,
        config: ModelConfig,
        fps: float = 25.0,
        prior_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.fps = fps
        self.prior_dropout = prior_dropout
        self.feature_extractor = feature_extractor
        self.motion_prior = MotionPrior(nfeats, config)
        self.motion_prior.requires_grad_(False)
        self.feature_predictor = FeaturePredictor(feature_extractor.output_dim(fps), style_dim, config)

    def train(self, mode: bool = True) -> ProbTalk3D:
        super().train(mode)
        if not self.prior_dropout:
            self.motion_prior.eval()
        return self

    def audio_features(self, wave: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """wave [N] at 16 kHz -> paired features [1, T, A] at 25 fps (T <= num_frames when given)."""
        features = self.feature_extractor(wave)
        return pair_frames(features, self.feature_extractor.frame_rate, self.fps, num_frames)

    def audio_features_batch(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """Several clips at once (the encoder may share passes): one [1, T_i, A] per wave [N_i]."""
        rate = self.feature_extractor.frame_rate
        return [pair_frames(f, rate, self.fps) for f in self.feature_extractor.encode_batch(waves)]

    def predict_latent(self, audio: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """audio [B, T, A], style [B, S] -> ẑ [B, T, C] (continuous, before the codebook)."""
        return self.feature_predictor(audio, style)

    @torch.no_grad()
    def sample(
        self,
        z_hat: torch.Tensor,
        num_samples: int = 1,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """ẑ [B, T, C] -> motion [B, num_samples, T, D] (model space).

        temperature None/0 quantises by argmin (all samples equal); τ > 0 draws each strip's code from
        softmax(-||ẑ - e||² / τ) with `generator`, so a seeded generator reproduces the samples.
        """
        b, t, c = z_hat.shape
        if not temperature:
            motion = self.motion_prior.motion_decoder(self.motion_prior.quantize(z_hat).z_q)
            return motion.unsqueeze(1).expand(b, num_samples, t, motion.shape[-1])
        z = z_hat.unsqueeze(1).expand(b, num_samples, t, c).reshape(b * num_samples, t, c)
        z_q = self.motion_prior.quantize(z, temperature, generator).z_q
        return self.motion_prior.motion_decoder(z_q).view(b, num_samples, t, -1)
