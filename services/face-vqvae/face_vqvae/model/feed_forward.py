"""Two-layer MLP with tanh-approximated GELU (upstream `MLP`: `l1` -> GELU -> `l2`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeedForward(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.l1 = nn.Linear(in_dim, hidden_dim)
        self.l2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, in_dim] -> [B, T, out_dim]; upstream's GELU is the tanh approximation."""
        return self.l2(F.gelu(self.l1(x), approximate="tanh"))
