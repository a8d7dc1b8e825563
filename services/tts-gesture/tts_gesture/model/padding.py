"""Explicit 1-D convolution padding: centred (the official models) or causal (left only, for streaming).

Convolutions are built with padding=0 and padded here, so the same parameters (and state-dict names) serve
both modes: a causal conv's output at frame t sees frames <= t only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_for(conv: nn.Conv1d, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """x [B, C, T] padded so that conv(x) keeps length T."""
    total = conv.dilation[0] * (conv.kernel_size[0] - 1)
    left = total if causal else total // 2
    return F.pad(x, (left, total - left))


def causal_attention_mask(length: int, device: torch.device) -> torch.Tensor:
    """[T, T] bool, True where query t may not attend to key s (s > t)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
