"""Absolute sinusoidal positional encoding with √d input scaling (ESPnet `PositionalEncoding`)."""

import math

import torch


def sinusoid_table(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """[P] positions (float) → [P, d_model] table with sin on even and cos on odd channels."""
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model))
    angles = positions[:, None].float() * div_term[None, :]
    table = torch.zeros(positions.numel(), d_model)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


class PositionalEncoding(torch.nn.Module):
    """x·√d + PE(pos), then dropout; the table is not a parameter, so it adds no state-dict keys.

    Args:
        d_model: feature size.
        dropout_rate: dropout after adding the encoding.
    """

    def __init__(self, d_model: int, dropout_rate: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = torch.nn.Dropout(p=dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, D] → [B, L, D]."""
        table = sinusoid_table(torch.arange(x.size(1)), self.d_model).to(x)
        return self.dropout(x * self.xscale + table[None])
