"""The phoneme encoder and the mel decoder: FastSpeech2's `Encoder` and `Decoder` (stacks of FFT blocks).

Upstream names: `src_word_emb`, `position_enc` (a frozen sinusoid table, saved in the state dict) and
`layer_stack.N`. The encoder attends over the whole sentence (FastTalker streams by sentence or phrase);
the decoder is causal: a causal attention mask and left-padded FFN convolutions, so mel frame t depends on
frames <= t only.
"""

from __future__ import annotations

import torch
from torch import nn

from tts_gesture.config import TransformerConfig
from tts_gesture.model.fft_block import FFTBlock
from tts_gesture.model.padding import causal_attention_mask
from tts_gesture.text.symbols import SYMBOLS


def sinusoid_table(n_position: int, d_hid: int) -> torch.Tensor:
    """[n_position, d_hid]: sin at even and cos at odd channels, angle = pos / 10000^(2*(i//2)/d_hid)."""
    position = torch.arange(n_position, dtype=torch.float64).unsqueeze(1)
    rate = torch.pow(10000.0, -2.0 * (torch.arange(d_hid) // 2).double() / d_hid)
    table = position * rate
    table[:, 0::2], table[:, 1::2] = table[:, 0::2].sin(), table[:, 1::2].cos()
    return table.float()


class _PositionedStack(nn.Module):
    """A frozen sinusoid table plus FFT blocks; longer inputs get a table computed on the fly (as upstream
    does at inference)."""

    def __init__(
        self, config: TransformerConfig, layers: int, heads: int, hidden: int, dropout: float, causal: bool
    ) -> None:
        super().__init__()
        self.causal = causal
        self.position_enc = nn.Parameter(
            sinusoid_table(config.max_seq_len + 1, hidden).unsqueeze(0), requires_grad=False
        )
        self.layer_stack = nn.ModuleList(
            FFTBlock(hidden, heads, config.conv_filter_size, config.conv_kernel_size, dropout, causal)
            for _ in range(layers)
        )

    def _run(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        table = (
            self.position_enc[:, :t]
            if t <= self.position_enc.shape[1]
            else (sinusoid_table(t, x.shape[2]).to(x).unsqueeze(0))
        )
        x = x + table
        attn_mask = (
            causal_attention_mask(t, x.device).unsqueeze(0)
            if self.causal
            else pad_mask.unsqueeze(1).expand(-1, t, -1)
        )
        for layer in self.layer_stack:
            x = layer(x, pad_mask, attn_mask)
        return x


class Encoder(_PositionedStack):
    """Phoneme ids -> hidden states, attending over the whole sentence."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(
            config,
            config.encoder_layer,
            config.encoder_head,
            config.encoder_hidden,
            config.encoder_dropout,
            causal=False,
        )
        self.src_word_emb = nn.Embedding(len(SYMBOLS), config.encoder_hidden, padding_idx=0)  # PAD is 0

    def forward(self, src_seq: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """src_seq [B, L] ids, src_mask [B, L] (True at padding) -> [B, L, H]."""
        return self._run(self.src_word_emb(src_seq), src_mask)


class Decoder(_PositionedStack):
    """Length-regulated hidden states -> decoder states at the mel frame rate, causally."""

    def __init__(self, config: TransformerConfig, causal: bool = True) -> None:
        super().__init__(
            config,
            config.decoder_layer,
            config.decoder_head,
            config.decoder_hidden,
            config.decoder_dropout,
            causal=causal,
        )

    def forward(self, x: torch.Tensor, mel_mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, H], mel_mask [B, T] (True at padding) -> [B, T, H]."""
        return self._run(x, mel_mask)
