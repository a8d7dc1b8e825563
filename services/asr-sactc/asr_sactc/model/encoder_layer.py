"""One pre-LN Conformer block: ½ macaron FFN, rel-pos MHSA, convolution module, ½ FFN, final LayerNorm."""

import torch

from asr_sactc.model.convolution_module import ConvolutionModule
from asr_sactc.model.positionwise_feed_forward import PositionwiseFeedForward
from asr_sactc.model.rel_position_attention import RelPositionMultiHeadedAttention


class EncoderLayer(torch.nn.Module):
    """ESPnet Conformer `EncoderLayer`: `norm_ff_macaron`, `norm_mha`, `norm_conv`, `norm_ff`, `norm_final`.

    Args:
        size: model size.
        self_attn: relative-position self-attention.
        feed_forward: second (post-conv) feed-forward block.
        feed_forward_macaron: first feed-forward block, or None without macaron style.
        conv_module: convolution module, or None.
        dropout_rate: residual dropout.
    """

    def __init__(
        self,
        size: int,
        self_attn: RelPositionMultiHeadedAttention,
        feed_forward: PositionwiseFeedForward,
        feed_forward_macaron: PositionwiseFeedForward | None,
        conv_module: ConvolutionModule | None,
        dropout_rate: float,
    ) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.feed_forward_macaron = feed_forward_macaron
        self.conv_module = conv_module
        # ESPnet LayerNorm uses eps 1e-12; keep it so converted checkpoints behave identically.
        self.norm_ff = torch.nn.LayerNorm(size, eps=1e-12)
        self.norm_mha = torch.nn.LayerNorm(size, eps=1e-12)
        if feed_forward_macaron is not None:
            self.norm_ff_macaron = torch.nn.LayerNorm(size, eps=1e-12)
            self.ff_scale = 0.5
        else:
            self.ff_scale = 1.0
        if conv_module is not None:
            self.norm_conv = torch.nn.LayerNorm(size, eps=1e-12)
            self.norm_final = torch.nn.LayerNorm(size, eps=1e-12)
        self.dropout = torch.nn.Dropout(dropout_rate)

    def forward(
        self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D], pos_emb [1, 2T-1, D], mask [B, 1, T] (True = valid) → ([B, T, D], mask)."""
        if self.feed_forward_macaron is not None:
            x = x + self.ff_scale * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        h = self.norm_mha(x)
        x = x + self.dropout(self.self_attn(h, h, h, pos_emb, mask))
        if self.conv_module is not None:
            x = x + self.dropout(self.conv_module(self.norm_conv(x), ~mask[:, 0, :]))
        x = x + self.ff_scale * self.dropout(self.feed_forward(self.norm_ff(x)))
        if self.conv_module is not None:
            x = self.norm_final(x)
        return x, mask
