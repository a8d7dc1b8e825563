"""Whisper's text decoder as the SOT attention decoder, with rows for the tokens SOT adds (`$`, blank)."""

import torch
import torch.nn.functional as F
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
        new_rows_only: of the token embedding, train only the rows after the pretrained ones (`$`, blank);
            the pretrained rows get no gradient, so they stay exactly as loaded.
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
        new_rows_only: bool = False,
    ) -> None:
        super().__init__()
        self.pretrained = model is not None
        self.pretrained_rows = 0
        if model is not None:
            from shared.encoders import add_token_rows, load_whisper_decoder, whisper_model_dir

            self.decoders = load_whisper_decoder(whisper_model_dir(model))
            pretrained = self.decoders.config.vocab_size
            if vocab_size < pretrained:
                raise ValueError(f"vocab_size {vocab_size} is below the pretrained vocabulary ({pretrained})")
            add_token_rows(self.decoders, vocab_size - pretrained)
            self.pretrained_rows = pretrained
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
        self.new_rows_only = new_rows_only

    @property
    def token_embedding(self) -> torch.nn.Embedding:
        return self.decoders.embed_tokens

    def _embedding_weight(self) -> torch.Tensor:
        weight = self.decoders.embed_tokens.weight
        if not self.new_rows_only:
            return weight
        # Detached pretrained rows: no gradient reaches them, and no [V, D] weight gradient is computed.
        return torch.cat([weight[: self.pretrained_rows].detach(), weight[self.pretrained_rows :]])

    def _logits(self, ys: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        limit = self.decoders.config.max_target_positions
        if ys.size(1) > limit:
            raise ValueError(f"{ys.size(1)} decoder tokens exceed Whisper's {limit} positions")
        weight = self._embedding_weight()
        hidden = self.decoders(
            inputs_embeds=F.embedding(ys, weight), encoder_hidden_states=memory, use_cache=False
        ).last_hidden_state
        return hidden @ weight.T

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

    @torch.no_grad()
    def cross_cache(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the cross-attention keys and values [1, H, P, d] of one utterance's memory [P, D]."""
        return [
            (
                _heads(layer.encoder_attn.k_proj(memory[None]), layer.encoder_attn.num_heads),
                _heads(layer.encoder_attn.v_proj(memory[None]), layer.encoder_attn.num_heads),
            )
            for layer in self.decoders.layers
        ]

    @torch.no_grad()
    def score_cached(
        self,
        ys: torch.Tensor,
        cross: list[tuple[torch.Tensor, torch.Tensor]],
        past: list[tuple[torch.Tensor, torch.Tensor]] | None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """`score` with key/value caches: next-token log-probabilities [N, V] of prefixes ys [N, L] and the
        self-attention keys and values [N, H, L, d] of every layer, given those of ys[:, :-1] (`past`, None
        at the first call) and `cross_cache` of the memory. Beam search then costs one position per step
        instead of the whole prefix and the 1500-position cross-attention projections."""
        d = self.decoders
        start = 0 if past is None else past[0][0].size(2)
        if ys.size(1) > d.config.max_target_positions:
            raise ValueError(f"{ys.size(1)} decoder tokens exceed Whisper's {d.config.max_target_positions}")
        x = d.embed_tokens(ys[:, start:]) + d.embed_positions.weight[start : ys.size(1)]
        present = []
        for i, layer in enumerate(d.layers):
            attn, heads = layer.self_attn, layer.self_attn.num_heads
            h = layer.self_attn_layer_norm(x)
            q, k, v = (_heads(proj(h), heads) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
            if past is not None:
                k, v = torch.cat([past[i][0], k], dim=2), torch.cat([past[i][1], v], dim=2)
            present.append((k, v))
            # Only the prompt (start 0) has several new positions; a cached step adds one, seeing them all.
            x = x + attn.out_proj(_merge(F.scaled_dot_product_attention(q, k, v, is_causal=start == 0)))
            cross_attn = layer.encoder_attn
            q = _heads(cross_attn.q_proj(layer.encoder_attn_layer_norm(x)), heads)
            ck, cv = (t.expand(q.size(0), -1, -1, -1) for t in cross[i])
            x = x + cross_attn.out_proj(_merge(F.scaled_dot_product_attention(q, ck, cv)))
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        hidden = d.layer_norm(x[:, -1])
        return torch.log_softmax(hidden @ d.embed_tokens.weight.T, dim=-1), present


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[N, L, D] → [N, H, L, D/H]."""
    return x.view(x.size(0), x.size(1), heads, -1).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """[N, H, L, d] → [N, L, H·d]."""
    return x.transpose(1, 2).reshape(x.size(0), x.size(2), -1)
