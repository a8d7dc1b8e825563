"""Sinusoidal positional encoding added to [B, T, C] sequences, followed by dropout."""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionalEncoding(nn.Module):
    """x + PE[:T] then dropout; PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(...).

    The table is rebuilt from (max_len, d_model) rather than stored: upstream saves it as a buffer of
    shape [max_len, 1, d_model], which checkpoints.py drops on load.
    """

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, C] (T frames at 25 fps) -> [B, T, C]."""
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"sequence of {x.shape[1]} frames is longer than max_len {self.pe.shape[0]}")
        return self.dropout(x + self.pe[: x.shape[1]])
