"""FastSpeech2's PostNet (Tacotron 2's): 5 conv + BatchNorm layers predicting a residual on the mel.

Upstream names: `convolutions.N.0.conv` (ConvNorm) and `convolutions.N.1` (BatchNorm1d). Causal padding
(left only) keeps the decoder's causality: the refined frame t depends on mel frames <= t only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tts_gesture.config import PostNetConfig
from tts_gesture.model.padding import pad_for


class ConvNorm(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(pad_for(self.conv, x, self.causal))


class PostNet(nn.Module):
    def __init__(self, n_mel_channels: int, config: PostNetConfig, causal: bool = True) -> None:
        super().__init__()
        width, k, n = config.postnet_embedding_dim, config.postnet_kernel_size, config.postnet_n_convolutions
        sizes = [n_mel_channels] + [width] * (n - 1) + [n_mel_channels]
        self.convolutions = nn.ModuleList(
            nn.Sequential(ConvNorm(c_in, c_out, k, causal), nn.BatchNorm1d(c_out))
            for c_in, c_out in zip(sizes[:-1], sizes[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """mel [B, T, M] -> residual [B, T, M] (tanh between layers, dropout 0.5 as upstream)."""
        x = x.transpose(1, 2)
        for i, layer in enumerate(self.convolutions):
            x = layer(x)
            x = F.dropout(x if i == len(self.convolutions) - 1 else torch.tanh(x), 0.5, self.training)
        return x.transpose(1, 2)
