"""Padding and causal masks in ESPnet's convention (True = padding, or True = may attend)."""

import torch


def make_pad_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """[B] lengths → [B, L] bool, True at padded positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


def subsequent_mask(size: int, device: torch.device | None = None) -> torch.Tensor:
    """[L, L] bool, True where position i may attend to position j (j <= i)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()
