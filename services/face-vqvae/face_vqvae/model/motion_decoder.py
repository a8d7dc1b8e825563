"""Stage-1 motion decoder: quantised latent [B, T, latent_dim] -> face motion [B, T, D] at 25 fps."""

from __future__ import annotations

import torch
from torch import nn

from face_vqvae.config import ModelConfig
from face_vqvae.model.linear_embedding import LinearEmbedding
from face_vqvae.model.positional_encoding import PositionalEncoding
from face_vqvae.model.temporal_conv_block import TemporalConvBlock
from face_vqvae.model.transformer import Transformer


class MotionDecoder(nn.Module):
    """Conv1d block (no upsampling) -> Linear -> PE+dropout -> Transformer -> Linear(C->D, no bias).

    Upstream `TransformerDecoder` with quant_factor 0 (`expander` is a one-block ModuleList there).
    """

    def __init__(self, nfeats: int, config: ModelConfig) -> None:
        super().__init__()
        c = config.latent_dim
        self.expander = nn.ModuleList([TemporalConvBlock(c)])
        self.decoder_linear_embedding = LinearEmbedding(c, c)
        self.decoder_pos_embedding = PositionalEncoding(c, config.dropout, config.max_len)
        self.decoder_transformer = Transformer(
            c, config.decoder_layers, config.num_heads, config.intermediate_size
        )
        self.feature_mapping_reverse = nn.Linear(c, nfeats, bias=False)

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        """z_q [B, T, C] -> motion [B, T, D] (model space)."""
        x = z_q
        for block in self.expander:
            x = block(x)
        x = self.decoder_pos_embedding(self.decoder_linear_embedding(x))
        return self.feature_mapping_reverse(self.decoder_transformer(x))
