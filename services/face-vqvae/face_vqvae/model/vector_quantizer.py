"""VQ bottleneck with upstream's channel-major strip layout, straight-through gradients and τ-sampling."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class Quantized(NamedTuple):
    z_q: torch.Tensor  # [B, T, C] straight-through quantised latent
    loss: torch.Tensor  # scalar VQ loss: beta * ||sg(e) - z||^2 + ||e - sg(z)||^2 (means)
    indices: torch.Tensor  # [B, C*T/e_dim] code per strip, in strip order


class VectorQuantizer(nn.Module):
    """Codebook `embedding` [n_embed, e_dim] (uniform ±1/n_embed init), beta-weighted commitment.

    Upstream quirk, reproduced verbatim because the official codebooks only make sense with it: z [B, T, C]
    is permuted to channel-major [B, C, T] and cut by `.view(-1, e_dim)` into C*T/e_dim vectors of e_dim
    *contiguous time steps of one channel* (with C = 2 e_dim that is 2T strips per item; a strip straddles
    two channels whenever T does not divide e_dim). It is not one code per frame.
    """

    def __init__(self, n_embed: int, e_dim: int, beta: float = 0.25) -> None:
        super().__init__()
        self.n_embed = n_embed
        self.e_dim = e_dim
        self.beta = beta
        self.embedding = nn.Embedding(n_embed, e_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)

    def flatten(self, z: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B*C*T/e_dim, e_dim]: upstream's `z.permute(0, 2, 1).contiguous().view(-1, e_dim)`."""
        return z.permute(0, 2, 1).contiguous().view(-1, self.e_dim)

    def unflatten(self, flat: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Inverse of flatten: [B*C*T/e_dim, e_dim] -> [B, T, C] for shape = (B, T, C)."""
        b, t, c = shape
        return flat.view(b, c, t).permute(0, 2, 1).contiguous()

    def distances(self, flat: torch.Tensor) -> torch.Tensor:
        """Squared L2 from each strip to each code: [N, e_dim] -> [N, n_embed] (upstream's expansion)."""
        e = self.embedding.weight
        return flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()

    def select(
        self, flat: torch.Tensor, temperature: float | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Code per strip [N]: argmin when temperature is None or 0, else a draw from softmax(-d / τ)."""
        d = self.distances(flat)
        if not temperature:
            return d.argmin(dim=1)
        probabilities = F.softmax(-d / temperature, dim=-1)
        return torch.multinomial(probabilities, 1, generator=generator).squeeze(1)

    def lookup(self, indices: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Codes [B, C*T/e_dim] (or flat [N]) -> quantised latent [B, T, C] with shape = (B, T, C)."""
        return self.unflatten(self.embedding(indices.reshape(-1)), shape)

    def forward(
        self, z: torch.Tensor, temperature: float | None = None, generator: torch.Generator | None = None
    ) -> Quantized:
        """z [B, T, C] (latent_dim C a multiple of e_dim) -> Quantized; see `select` for temperature."""
        flat = self.flatten(z)
        indices = self.select(flat, temperature, generator)
        flat_q = self.embedding(indices)
        loss = self.beta * F.mse_loss(flat, flat_q.detach()) + F.mse_loss(flat_q, flat.detach())
        flat_q = flat + (flat_q - flat).detach()
        return Quantized(self.unflatten(flat_q, z.shape), loss, indices.view(z.shape[0], -1))
