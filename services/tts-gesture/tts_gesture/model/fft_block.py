"""FastSpeech2's FFT block (ming024/FastSpeech2 `transformer/`): post-LN self-attention, then a conv FFN.

Parameter names are upstream's: `slf_attn.{w_qs,w_ks,w_vs,fc,layer_norm}`, `pos_ffn.{w_1,w_2,layer_norm}`.
With causal=True the FFN convolutions pad on the left only; the attention mask is the caller's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tts_gesture.model.padding import pad_for


class MultiHeadAttention(nn.Module):
    def __init__(self, n_head: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.w_qs = nn.Linear(d_model, d_model)
        self.w_ks = nn.Linear(d_model, d_model)
        self.w_vs = nn.Linear(d_model, d_model)
        self.layer_norm = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, C]; mask [B or 1, T, T] bool, True where attention is forbidden -> [B, T, C]."""
        b, t, c = x.shape

        def heads(linear: nn.Linear) -> torch.Tensor:
            return linear(x).view(b, t, self.n_head, c // self.n_head).transpose(1, 2)

        # SDPA's boolean mask marks allowed positions; upstream's marks forbidden ones.
        attended = F.scaled_dot_product_attention(
            heads(self.w_qs),
            heads(self.w_ks),
            heads(self.w_vs),
            attn_mask=~mask.unsqueeze(1),
            dropout_p=self.dropout.p if self.training else 0.0,
        )
        output = self.dropout(self.fc(attended.transpose(1, 2).reshape(b, t, c)))
        return self.layer_norm(output + x)


class PositionwiseFeedForward(nn.Module):
    def __init__(
        self, d_in: int, d_hid: int, kernel_size: tuple[int, int], dropout: float, causal: bool
    ) -> None:
        super().__init__()
        self.causal = causal
        self.w_1 = nn.Conv1d(d_in, d_hid, kernel_size[0])
        self.w_2 = nn.Conv1d(d_hid, d_in, kernel_size[1])
        self.layer_norm = nn.LayerNorm(d_in)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, T, C]."""
        y = x.transpose(1, 2)
        y = F.relu(self.w_1(pad_for(self.w_1, y, self.causal)))
        y = self.w_2(pad_for(self.w_2, y, self.causal)).transpose(1, 2)
        return self.layer_norm(self.dropout(y) + x)


class FFTBlock(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_head: int,
        d_inner: int,
        kernel_size: tuple[int, int],
        dropout: float,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.slf_attn = MultiHeadAttention(n_head, d_model, dropout)
        self.pos_ffn = PositionwiseFeedForward(d_model, d_inner, kernel_size, dropout, causal)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, C], pad_mask [B, T] (True at padding), attn_mask [B or 1, T, T] -> [B, T, C]."""
        x = self.slf_attn(x, attn_mask).masked_fill(pad_mask.unsqueeze(-1), 0.0)
        return self.pos_ffn(x).masked_fill(pad_mask.unsqueeze(-1), 0.0)
