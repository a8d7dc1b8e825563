"""Stage 1 of ProbTalk3D: the motion-prior VQ-VAE (encoder -> codebook -> decoder) over face motion."""

from __future__ import annotations

import torch
from torch import nn

from face_vqvae.config import ModelConfig
from face_vqvae.model.motion_decoder import MotionDecoder
from face_vqvae.model.motion_encoder import MotionEncoder
from face_vqvae.model.vector_quantizer import Quantized, VectorQuantizer


class MotionPrior(nn.Module):
    """Upstream `VQVAE` (`model_vqvae_prior.py`): `motion_encoder`, `quantize`, `motion_decoder`.

    Motion is [B, T, D] in model space at 25 fps; the latent is [B, T, latent_dim].
    """

    def __init__(self, nfeats: int, config: ModelConfig) -> None:
        super().__init__()
        self.motion_encoder = MotionEncoder(nfeats, config)
        self.motion_decoder = MotionDecoder(nfeats, config)
        self.quantize = VectorQuantizer(config.n_embed, config.zquant_dim, config.beta)

    def forward(self, motion: torch.Tensor) -> tuple[torch.Tensor, Quantized]:
        """Reconstruct: motion [B, T, D] -> (motion_pred [B, T, D], Quantized of the encoding)."""
        quantized = self.quantize(self.motion_encoder(motion))
        return self.motion_decoder(quantized.z_q), quantized

    def get_quant(self, motion: torch.Tensor) -> Quantized:
        """Quantised latent of ground-truth motion (stage 2's latent target): [B, T, D] -> z_q [B, T, C]."""
        return self.quantize(self.motion_encoder(motion))
