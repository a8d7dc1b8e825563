"""One pre-LN Transformer decoder block: masked self-attention, source attention, feed-forward."""

import torch

from asr_sactc.model.multi_headed_attention import MultiHeadedAttention
from asr_sactc.model.positionwise_feed_forward import PositionwiseFeedForward


class DecoderLayer(torch.nn.Module):
    """ESPnet `DecoderLayer` with `self_attn`, `src_attn`, `feed_forward`, `norm1`, `norm2`, `norm3`.

    Args:
        size: model size.
        self_attn: causal self-attention over the token prefix.
        src_attn: attention over the encoder output.
        feed_forward: position-wise FFN.
        dropout_rate: residual dropout.
    """

    def __init__(
        self,
        size: int,
        self_attn: MultiHeadedAttention,
        src_attn: MultiHeadedAttention,
        feed_forward: PositionwiseFeedForward,
        dropout_rate: float,
    ) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.norm1 = torch.nn.LayerNorm(size, eps=1e-12)
        self.norm2 = torch.nn.LayerNorm(size, eps=1e-12)
        self.norm3 = torch.nn.LayerNorm(size, eps=1e-12)
        self.dropout = torch.nn.Dropout(dropout_rate)

    def forward(
        self,
        tgt: torch.Tensor,
        tgt_mask: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """tgt [B, L, D], tgt_mask [B, L, L], memory [B, T, D], memory_mask [B, 1, T] → [B, L, D].

        Masks are True where attention is allowed; memory_mask is None when no memory frame is padded.
        """
        h = self.norm1(tgt)
        x = tgt + self.dropout(self.self_attn(h, h, h, tgt_mask))
        h = self.norm2(x)
        x = x + self.dropout(self.src_attn(h, memory, memory, memory_mask))
        return x + self.dropout(self.feed_forward(self.norm3(x)))
