"""Stage-1 motion encoder: face motion [B, T, D] at 25 fps -> continuous latent z [B, T, latent_dim]."""

from __future__ import annotations

import torch
from torch import nn

from face_vqvae.config import ModelConfig
from face_vqvae.model.linear_embedding import LinearEmbedding
from face_vqvae.model.positional_encoding import PositionalEncoding
from face_vqvae.model.temporal_conv_block import TemporalConvBlock
from face_vqvae.model.transformer import Transformer


class MotionEncoder(nn.Module):
    """Linear(D->C)+LeakyReLU(0.2) -> Conv1d block (no downsampling) -> Linear -> PE+dropout -> Transformer.

    Upstream `TransformerEncoder` with quant_factor 0; one latent vector per motion frame.
    """

    def __init__(self, nfeats: int, config: ModelConfig) -> None:
        super().__init__()
        c = config.latent_dim
        self.feature_mapping = nn.Sequential(nn.Linear(nfeats, c), nn.LeakyReLU(0.2))
        self.squasher = nn.Sequential(TemporalConvBlock(c))
        self.encoder_linear_embedding = LinearEmbedding(c, c)
        self.encoder_pos_embedding = PositionalEncoding(c, config.dropout, config.max_len)
        self.encoder_transformer = Transformer(
            c, config.encoder_layers, config.num_heads, config.intermediate_size
        )

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        """motion [B, T, D] (model space, 25 fps) -> z [B, T, C]."""
        x = self.squasher(self.feature_mapping(motion))
        x = self.encoder_pos_embedding(self.encoder_linear_embedding(x))
        return self.encoder_transformer(x)
