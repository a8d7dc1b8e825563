"""Multi-head self-attention as in learning2listen (fused bias-free QKV, scale 1/sqrt(hidden size))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Upstream `Attention`: `to_qkv` (no bias) packs [q | k | v], each split into heads; `to_out` projects.

    Upstream quirk kept for checkpoint fidelity: logits are scaled by hidden_size^-0.5 (256 -> 1/16), not by
    the per-head width^-0.5 of standard attention.
    """

    def __init__(self, in_dim: int, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim**-0.5
        self.to_qkv = nn.Linear(in_dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, in_dim] -> [B, T, dim]; every frame attends to every frame (no mask)."""
        b, t, _ = x.shape
        q, k, v = self.to_qkv(x).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.to_out(out.transpose(1, 2).reshape(b, t, -1))
