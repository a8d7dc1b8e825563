"""Relative-position multi-head self-attention (Transformer-XL style), ESPnet "latest" variant."""

import math

import torch

from asr_sactc.model.multi_headed_attention import MultiHeadedAttention


class RelPositionMultiHeadedAttention(MultiHeadedAttention):
    """Self-attention with content (u) and position (v) biases: `linear_pos`, `pos_bias_u`, `pos_bias_v`.

    Args:
        n_head: number of heads.
        n_feat: model size.
        dropout_rate: dropout on the attention weights.
        zero_triu: zero the upper triangle of the position scores (ESPnet option, off in the recipe).
    """

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float, zero_triu: bool = False) -> None:
        super().__init__(n_head, n_feat, dropout_rate)
        self.zero_triu = zero_triu
        self.linear_pos = torch.nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = torch.nn.Parameter(torch.empty(self.h, self.d_k))
        self.pos_bias_v = torch.nn.Parameter(torch.empty(self.h, self.d_k))
        torch.nn.init.xavier_uniform_(self.pos_bias_u)
        torch.nn.init.xavier_uniform_(self.pos_bias_v)

    def rel_shift(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H, T1, 2T1-1] scores over relative offsets → [B, H, T1, T1] scores over key positions."""
        batch, heads, t1, n_pos = x.shape
        padded = torch.cat([x.new_zeros(batch, heads, t1, 1), x], dim=-1).view(batch, heads, n_pos + 1, t1)
        x = padded[:, :, 1:].reshape(batch, heads, t1, n_pos)[:, :, :, : n_pos // 2 + 1]
        if self.zero_triu:
            x = x * torch.ones(t1, x.size(3), device=x.device).tril(x.size(3) - t1)[None, None]
        return x

    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        pos_emb: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """query/key/value [B, T, D], pos_emb [1, 2T-1, D], mask [B, 1, T] (True = valid) → [B, T, D]."""
        q, k, v = self.forward_qkv(query, key, value)
        q = q.transpose(1, 2)  # [B, T, H, d_k] so the per-head biases broadcast
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        matrix_ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        matrix_bd = self.rel_shift(torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1)))
        return self.forward_attention(v, (matrix_ac + matrix_bd) / math.sqrt(self.d_k), mask)
