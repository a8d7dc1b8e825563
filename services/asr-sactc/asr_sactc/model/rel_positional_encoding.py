"""Relative sinusoidal positional encoding, ESPnet `RelPositionalEncoding` (rel_pos_type "latest")."""

import math

import torch

from asr_sactc.model.positional_encoding import sinusoid_table


class RelPositionalEncoding(torch.nn.Module):
    """Scale the input by √d and return embeddings of relative positions T-1 … -(T-1).

    Args:
        d_model: feature size.
        dropout_rate: dropout applied to both outputs.
    """

    def __init__(self, d_model: int, dropout_rate: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = torch.nn.Dropout(p=dropout_rate)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, D] → (x·√d [B, T, D], pos_emb [1, 2T-1, D]) ordered from +(T-1) down to -(T-1)."""
        length = x.size(1)
        relative = torch.arange(length - 1, -length, -1)
        pos_emb = sinusoid_table(relative, self.d_model).to(x)[None]
        return self.dropout(x * self.xscale), self.dropout(pos_emb)
