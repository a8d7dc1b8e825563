"""Multi-head scaled dot-product attention with ESPnet parameter names (`linear_q/k/v/out`)."""

import math

import torch


class MultiHeadedAttention(torch.nn.Module):
    """Multi-head attention.

    Args:
        n_head: number of heads.
        n_feat: model size (d_k = n_feat / n_head).
        dropout_rate: dropout on the attention weights.
    """

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float) -> None:
        super().__init__()
        if n_feat % n_head:
            raise ValueError(f"n_feat {n_feat} is not divisible by n_head {n_head}")
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = torch.nn.Linear(n_feat, n_feat)
        self.linear_k = torch.nn.Linear(n_feat, n_feat)
        self.linear_v = torch.nn.Linear(n_feat, n_feat)
        self.linear_out = torch.nn.Linear(n_feat, n_feat)
        self.dropout = torch.nn.Dropout(p=dropout_rate)

    def forward_qkv(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, T1, D], [B, T2, D], [B, T2, D] → q [B, H, T1, d_k], k and v [B, H, T2, d_k]."""
        batch = query.size(0)
        q = self.linear_q(query).view(batch, -1, self.h, self.d_k).transpose(1, 2)
        k = self.linear_k(key).view(batch, -1, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(value).view(batch, -1, self.h, self.d_k).transpose(1, 2)
        return q, k, v

    def forward_attention(
        self, value: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """value [B, H, T2, d_k], scores [B, H, T1, T2], mask [B, 1|T1, T2] (True = attend) → [B, T1, D]."""
        if mask is not None:
            blocked = ~mask[:, None]
            scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
            attn = torch.softmax(scores, dim=-1).masked_fill(blocked, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        x = torch.matmul(self.dropout(attn), value)
        return self.linear_out(x.transpose(1, 2).reshape(x.size(0), -1, self.h * self.d_k))

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """[B, T1, D], [B, T2, D], [B, T2, D], mask [B, 1 or T1, T2] → [B, T1, D]."""
        q, k, v = self.forward_qkv(query, key, value)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        return self.forward_attention(v, scores, mask)
