"""Pre-LN Transformer encoder stack (learning2listen style): x + f(LayerNorm(x)), attention then MLP."""

from __future__ import annotations

import torch
from torch import nn

from face_vqvae.model.feed_forward import FeedForward
from face_vqvae.model.self_attention import SelfAttention


class _PreNorm(nn.Module):
    """LayerNorm (eps 1e-5) then `fn`; attribute names `norm`/`fn` are upstream's `Norm`."""

    def __init__(self, fn: nn.Module, size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(size, eps=1e-5)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class _Residual(nn.Module):
    """x + fn(x); attribute name `fn` is upstream's `Residual`."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class Transformer(nn.Module):
    """`num_layers` x [Residual(PreNorm(SelfAttention)), Residual(PreNorm(FeedForward))], no final norm.

    Parameters are `net.{2i}.fn.norm.*`, `net.{2i}.fn.fn.to_qkv.weight`, `net.{2i}.fn.fn.to_out.*`,
    `net.{2i+1}.fn.norm.*`, `net.{2i+1}.fn.fn.l1.*`, `net.{2i+1}.fn.fn.l2.*` as upstream.
    """

    def __init__(self, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for _ in range(num_layers):
            blocks.append(
                _Residual(_PreNorm(SelfAttention(hidden_size, hidden_size, num_heads), hidden_size))
            )
            blocks.append(
                _Residual(_PreNorm(FeedForward(hidden_size, hidden_size, intermediate_size), hidden_size))
            )
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, T, C]."""
        return self.net(x)
