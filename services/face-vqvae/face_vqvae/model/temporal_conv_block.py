"""Conv1d(k5, replicate pad) -> LeakyReLU(0.2) -> InstanceNorm over time, on [B, T, C] sequences."""

from __future__ import annotations

import torch
from torch import nn


class TemporalConvBlock(nn.Sequential):
    """The upstream `squasher`/`expander` block with quant_factor 0: no temporal down- or upsampling.

    A Sequential so its parameters are named `0.weight`/`0.bias` like upstream; it takes and returns
    [B, T, C] and transposes to Conv1d's [B, C, T] inside. InstanceNorm has no affine parameters.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv1d(channels, channels, 5, stride=1, padding=2, padding_mode="replicate"),
            nn.LeakyReLU(0.2),
            nn.InstanceNorm1d(channels, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, T, C] (T >= 2: InstanceNorm needs more than one frame)."""
        return super().forward(x.transpose(1, 2)).transpose(1, 2)
