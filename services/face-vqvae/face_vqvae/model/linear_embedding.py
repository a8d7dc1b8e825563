"""A Linear layer wrapped as `.net`, kept so parameter names match upstream (`*_linear_embedding.net.*`)."""

from __future__ import annotations

import torch
from torch import nn


class LinearEmbedding(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Linear(size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, size] -> [B, T, dim]."""
        return self.net(x)
