"""Position-wise feed-forward block `w_2(dropout(act(w_1(x))))` (ESPnet `PositionwiseFeedForward`)."""

import torch


class PositionwiseFeedForward(torch.nn.Module):
    """Two linear layers with an activation between them.

    Args:
        idim: input and output size.
        hidden_units: inner size (`linear_units`).
        dropout_rate: dropout after the activation.
        activation: activation module (Swish in the Conformer, ReLU in the Transformer decoder).
    """

    def __init__(
        self, idim: int, hidden_units: int, dropout_rate: float, activation: torch.nn.Module | None = None
    ) -> None:
        super().__init__()
        self.w_1 = torch.nn.Linear(idim, hidden_units)
        self.w_2 = torch.nn.Linear(hidden_units, idim)
        self.dropout = torch.nn.Dropout(dropout_rate)
        self.activation = torch.nn.ReLU() if activation is None else activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, idim] → [B, T, idim]."""
        return self.w_2(self.dropout(self.activation(self.w_1(x))))
