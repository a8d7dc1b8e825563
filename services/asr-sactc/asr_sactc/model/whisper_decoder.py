"""Whisper's text decoder as the SOT attention decoder, with rows for the tokens SOT adds (`$`, blank)."""

import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperDecoder


class OpenAIWhisperDecoder(torch.nn.Module):
    """transformers' `WhisperDecoder` under `decoders` (the attribute of ESPnet's wrapper of the same name),
    logits through the tied token embedding as in Whisper. No dropout, as in Whisper's own config.

    The decoder attends to all encoder positions, padding included, as Whisper was trained (it always sees
    a full 30 s window); `hlens` is therefore unused. Tokens after the pretrained vocabulary get embedding
    rows equal to the mean pretrained row (`shared.encoders.add_token_rows`, which explains the choice).

    Args:
        vocab_size: output tokens (the pretrained vocabulary plus SOT's additions).
        encoder_output_size: must equal the decoder's model size.
        model: `base`, `tiny.en` or a CTranslate2 Whisper folder; None builds random weights of the sizes
            below (tests).
        attention_heads, linear_units, num_blocks, max_target_positions: sizes of a random decoder.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        model: str | None = "base",
        attention_heads: int = 8,
        linear_units: int = 2048,
        num_blocks: int = 6,
        max_target_positions: int = 448,
    ) -> None:
        super().__init__()
        if model is not None:
            from shared.encoders import add_token_rows, load_whisper_decoder, whisper_model_dir

            self.decoders = load_whisper_decoder(whisper_model_dir(model))
            pretrained = self.decoders.config.vocab_size
            if vocab_size < pretrained:
                raise ValueError(f"vocab_size {vocab_size} is below the pretrained vocabulary ({pretrained})")
            add_token_rows(self.decoders, vocab_size - pretrained)
        else:
            self.decoders = WhisperDecoder(
                WhisperConfig(
                    vocab_size=vocab_size,
                    d_model=encoder_output_size,
                    decoder_layers=num_blocks,
                    decoder_attention_heads=attention_heads,
                    decoder_ffn_dim=linear_units,
                    max_target_positions=max_target_positions,
                    pad_token_id=None,
                )
            )
        # Decoding reads these: attend to every encoder position, and stop at Whisper's position limit.
        self.full_window = True
        self.max_length: int | None = self.decoders.config.max_target_positions
        if self.decoders.config.d_model != encoder_output_size:
            raise ValueError(f"decoder size {self.decoders.config.d_model} != encoder {encoder_output_size}")

    def _logits(self, ys: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        limit = self.decoders.config.max_target_positions
        if ys.size(1) > limit:
            raise ValueError(f"{ys.size(1)} decoder tokens exceed Whisper's {limit} positions")
        hidden = self.decoders(input_ids=ys, encoder_hidden_states=memory, use_cache=False).last_hidden_state
        return hidden @ self.decoders.embed_tokens.weight.T

    def forward(
        self, hs_pad: torch.Tensor, hlens: torch.Tensor, ys_in_pad: torch.Tensor, ys_in_lens: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced logits [B, L, V] for prompt-prefixed ids ys_in_pad [B, L] over hs_pad [B, P, D].

        Padding after an utterance's end only follows its real tokens, which the causal mask keeps unseen.
        """
        return self._logits(ys_in_pad, hs_pad)

    def score(self, ys: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities [N, V] of prompt-prefixed prefixes ys [N, L] over memory [N, P, D]."""
        return torch.log_softmax(self._logits(ys, memory)[:, -1], dim=-1)
