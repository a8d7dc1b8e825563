"""Whisper's audio encoder as the SOT model's encoder: pretrained, frozen except for its top blocks."""

import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder


class OpenAIWhisperEncoder(torch.nn.Module):
    """transformers' `WhisperEncoder` under `encoders` (the attribute of ESPnet's wrapper of the same name).

    The encoder splits in two for training on cached features: `frozen` (convolutions, positions and the
    blocks below the trainable ones, plus the final LayerNorm when nothing is trainable) and `top` (the last
    `trainable_blocks` blocks and the final LayerNorm). Frozen parameters have requires_grad False and stay
    in eval mode, so their output is a pure function of the audio that `asr_sactc.feature_cache` can store.

    Args:
        input_size: Mel bins from the front-end.
        model: `base`, `tiny.en` or a CTranslate2 Whisper folder to load; None builds random weights of the
            sizes below (tests).
        trainable_blocks: top blocks to fine-tune (0: the whole encoder is frozen).
        output_size, num_blocks, attention_heads, linear_units, max_source_positions: sizes of a random
            encoder (ignored when `model` is set: the file's sizes are used).
    """

    def __init__(
        self,
        input_size: int = 80,
        model: str | None = "base",
        trainable_blocks: int = 0,
        output_size: int = 512,
        num_blocks: int = 6,
        attention_heads: int = 8,
        linear_units: int = 2048,
        max_source_positions: int = 1500,
    ) -> None:
        super().__init__()
        self.pretrained = model is not None
        if model is not None:
            from shared.encoders import load_whisper_encoder, whisper_model_dir

            self.encoders = load_whisper_encoder(whisper_model_dir(model))
        else:
            self.encoders = WhisperEncoder(
                WhisperConfig(
                    num_mel_bins=input_size,
                    d_model=output_size,
                    encoder_layers=num_blocks,
                    encoder_attention_heads=attention_heads,
                    encoder_ffn_dim=linear_units,
                    max_source_positions=max_source_positions,
                )
            )
        if self.encoders.config.num_mel_bins != input_size:
            raise ValueError(
                f"the encoder takes {self.encoders.config.num_mel_bins} Mel bins, got {input_size}"
            )
        layers = len(self.encoders.layers)
        if not 0 <= trainable_blocks <= layers:
            raise ValueError(f"trainable_blocks must be in 0..{layers}, got {trainable_blocks}")
        self.trainable_blocks = trainable_blocks
        for module in self._frozen_modules():
            module.requires_grad_(False)

    def _frozen_modules(self) -> list[torch.nn.Module]:
        e = self.encoders
        frozen = [e.conv1, e.conv2, e.embed_positions, *e.layers[: len(e.layers) - self.trainable_blocks]]
        return frozen + ([e.layer_norm] if self.trainable_blocks == 0 else [])

    def train(self, mode: bool = True) -> "OpenAIWhisperEncoder":
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def output_size(self) -> int:
        return self.encoders.config.d_model

    def frozen(self, feats: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, 2·P] log-Mel → [B, P, D] output of the frozen part (no gradient)."""
        e = self.encoders
        with torch.no_grad():
            x = torch.nn.functional.gelu(e.conv1(feats))
            x = torch.nn.functional.gelu(e.conv2(x)).transpose(1, 2)
            x = x + e.embed_positions.weight[: x.size(1)]
            for layer in e.layers[: len(e.layers) - self.trainable_blocks]:
                x = layer(x, None)
            return e.layer_norm(x) if self.trainable_blocks == 0 else x

    def top(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, P, D] frozen-part output → [B, P, D] encoder output (identity when nothing is trainable)."""
        e = self.encoders
        if self.trainable_blocks == 0:
            return hidden
        for layer in e.layers[len(e.layers) - self.trainable_blocks :]:
            hidden = layer(hidden, None)
        return e.layer_norm(hidden)

    def forward(self, feats: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats [B, n_mels, 2·P], valid frames [B] → encoder states [B, P, D] at 20 ms, valid frames [B].

        Every one of the P positions is computed, as Whisper always encodes its whole window; `frames`
        says how many of them cover audio (the CTC head uses those only).
        """
        expected = 2 * self.encoders.config.max_source_positions
        if feats.size(-1) != expected:
            raise ValueError(f"Whisper's encoder takes {expected} Mel frames, got {feats.size(-1)}")
        return self.top(self.frozen(feats)), frames
