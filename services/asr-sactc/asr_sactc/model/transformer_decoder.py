"""Attention decoder (ESPnet `TransformerDecoder`): token embedding, pre-LN blocks, output projection."""

import torch

from asr_sactc.model.decoder_layer import DecoderLayer
from asr_sactc.model.mask import make_pad_mask, subsequent_mask
from asr_sactc.model.multi_headed_attention import MultiHeadedAttention
from asr_sactc.model.positional_encoding import PositionalEncoding
from asr_sactc.model.positionwise_feed_forward import PositionwiseFeedForward


class TransformerDecoder(torch.nn.Module):
    """`embed` (Embedding, PositionalEncoding) → `decoders` → `after_norm` → `output_layer`.

    It attends to the valid encoder frames only (`full_window` False) and has no length limit.

    The keyword arguments are ESPnet's `decoder_conf` keys.

    Args:
        vocab_size: output vocabulary (incl. blank and sos/eos).
        encoder_output_size: d of the encoder, also the decoder's model size.
        attention_heads: heads (4).
        linear_units: FFN inner size (2048).
        num_blocks: decoder blocks (6 in the released configs, 8 in the paper text).
        dropout_rate: residual and FFN dropout.
        positional_dropout_rate: dropout after the positional encoding.
        self_attention_dropout_rate: dropout on self-attention weights.
        src_attention_dropout_rate: dropout on source-attention weights.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        self_attention_dropout_rate: float = 0.0,
        src_attention_dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.full_window = False
        self.max_length: int | None = None
        dim = encoder_output_size
        self.embed = torch.nn.Sequential(
            torch.nn.Embedding(vocab_size, dim), PositionalEncoding(dim, positional_dropout_rate)
        )
        self.decoders = torch.nn.ModuleList(
            DecoderLayer(
                dim,
                MultiHeadedAttention(attention_heads, dim, self_attention_dropout_rate),
                MultiHeadedAttention(attention_heads, dim, src_attention_dropout_rate),
                PositionwiseFeedForward(dim, linear_units, dropout_rate),
                dropout_rate,
            )
            for _ in range(num_blocks)
        )
        self.after_norm = torch.nn.LayerNorm(dim, eps=1e-12)
        self.output_layer = torch.nn.Linear(dim, vocab_size)

    def forward(
        self, hs_pad: torch.Tensor, hlens: torch.Tensor, ys_in_pad: torch.Tensor, ys_in_lens: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced decoding.

        Args:
            hs_pad: [B, T, D] encoder output.
            hlens: [B] encoder lengths.
            ys_in_pad: [B, L] `<sos>`-prefixed token ids.
            ys_in_lens: [B] lengths of ys_in_pad.

        Returns:
            [B, L, V] logits.
        """
        length = ys_in_pad.size(1)
        tgt_mask = (
            ~make_pad_mask(ys_in_lens, length)[:, None, :] & subsequent_mask(length, ys_in_pad.device)[None]
        )
        memory_mask = ~make_pad_mask(hlens, hs_pad.size(1))[:, None, :]
        x = self.embed(ys_in_pad)
        for layer in self.decoders:
            x = layer(x, tgt_mask, hs_pad, memory_mask)
        return self.output_layer(self.after_norm(x))

    def score(self, ys: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities for N prefixes of equal length (used by beam search).

        Args:
            ys: [N, L] prefixes starting with `<sos>`.
            memory: [N, T, D] encoder output, one copy per prefix.

        Returns:
            [N, V] log-probabilities of the token after each prefix.
        """
        n, length = ys.shape
        tgt_mask = subsequent_mask(length, ys.device)[None].expand(n, length, length)
        x = self.embed(ys)
        for layer in self.decoders:
            x = layer(x, tgt_mask, memory, None)
        return torch.log_softmax(self.output_layer(self.after_norm(x[:, -1])), dim=-1)
