"""Global mean-variance normalisation with ESPnet's `mean`/`std` buffers (`normalize.*` in checkpoints)."""

import torch

from asr_sactc.model.mask import make_pad_mask


class GlobalMVN(torch.nn.Module):
    """(x - mean) / std per feature dimension, padded frames zeroed.

    The buffers start as identity statistics and are filled by `set_stats` (from training features) or by
    loading an ESPnet checkpoint; they are float64 like ESPnet's (computed from numpy stats).

    Args:
        feat_dim: feature size.
        eps: floor on std.
    """

    def __init__(self, feat_dim: int, eps: float = 1.0e-20) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(feat_dim, dtype=torch.float64))
        self.register_buffer("std", torch.ones(feat_dim, dtype=torch.float64))

    @torch.no_grad()
    def set_stats(self, feat_sum: torch.Tensor, feat_sum_square: torch.Tensor, count: int) -> None:
        """Set mean and std from accumulated Σx and Σx² over `count` frames ([D] each)."""
        mean = feat_sum.double() / count
        var = feat_sum_square.double() / count - mean * mean
        self.mean.copy_(mean)
        self.std.copy_(var.clamp(min=0).sqrt().clamp(min=self.eps))

    def forward(self, x: torch.Tensor, ilens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, D], [B] → [B, T, D] normalised, [B]."""
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return x.masked_fill(make_pad_mask(ilens, x.size(1))[:, :, None], 0.0), ilens
