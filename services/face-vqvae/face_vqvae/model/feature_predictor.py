"""Stage-2 feature predictor: paired audio features ⊙ style embedding -> predicted latent ẑ [B, T, C]."""

from __future__ import annotations

import torch
from torch import nn

from face_vqvae.config import ModelConfig
from face_vqvae.model.linear_embedding import LinearEmbedding
from face_vqvae.model.positional_encoding import PositionalEncoding
from face_vqvae.model.temporal_conv_block import TemporalConvBlock
from face_vqvae.model.transformer import Transformer


class FeaturePredictor(nn.Module):
    """Linear(A->C) ⊙ Linear(S->C, no bias)(style) -> Conv1d block -> Linear -> PE+dropout -> Transformer.

    Upstream `TransformerPredictor`: the style enters multiplicatively, once, before the temporal stack.
    A is the paired audio width (2 x 768 = 1536 for HuBERT-base, 2 x 512 = 1024 for Whisper-base) and
    S the style width (43 for 3DMEAD).
    """

    def __init__(self, audio_dim: int, style_dim: int, config: ModelConfig) -> None:
        super().__init__()
        c = config.latent_dim
        self.audio_feature_map = nn.Linear(audio_dim, c)
        self.style_embedding = nn.Linear(style_dim, c, bias=False)
        self.squasher = nn.Sequential(TemporalConvBlock(c))
        self.encoder_linear_embedding = LinearEmbedding(c, c)
        self.encoder_pos_embedding = PositionalEncoding(c, config.dropout, config.max_len)
        self.encoder_transformer = Transformer(
            c, config.predictor_layers, config.num_heads, config.intermediate_size
        )

    def forward(self, audio: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """audio [B, T, A] at 25 fps, style [B, S] -> ẑ [B, T, C]."""
        x = self.audio_feature_map(audio) * self.style_embedding(style).unsqueeze(1)
        x = self.encoder_pos_embedding(self.encoder_linear_embedding(self.squasher(x)))
        return self.encoder_transformer(x)
