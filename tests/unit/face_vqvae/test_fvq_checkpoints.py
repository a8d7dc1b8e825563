"""Official Lightning checkpoints (upstream key names and shapes, paper sizes) load strictly onto ours."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from face_vqvae.checkpoints import CheckpointError, load_motion_prior, load_probtalk3d, read_state_dict
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.model import build_motion_prior, build_probtalk3d

C, D, MLP, CODES, CODE_DIM = 256, 53, 384, 256, 128


def _transformer(prefix: str, layers: int) -> dict[str, tuple[int, ...]]:
    """Upstream `Transformer` keys: net.{2i} attention block, net.{2i+1} MLP block."""
    keys: dict[str, tuple[int, ...]] = {}
    for i in range(layers):
        a, m = f"{prefix}.net.{2 * i}.fn", f"{prefix}.net.{2 * i + 1}.fn"
        keys |= {f"{a}.norm.weight": (C,), f"{a}.norm.bias": (C,), f"{a}.fn.to_qkv.weight": (3 * C, C)}
        keys |= {f"{a}.fn.to_out.weight": (C, C), f"{a}.fn.to_out.bias": (C,)}
        keys |= {f"{m}.norm.weight": (C,), f"{m}.norm.bias": (C,), f"{m}.fn.l1.weight": (MLP, C)}
        keys |= {f"{m}.fn.l1.bias": (MLP,), f"{m}.fn.l2.weight": (C, MLP), f"{m}.fn.l2.bias": (C,)}
    return keys


def _official_prior_keys() -> dict[str, tuple[int, ...]]:
    """Stage-1 `VQVAE` state_dict as Lightning saves it (PE tables and loss buffers included)."""
    keys = {
        "motion_encoder.feature_mapping.0.weight": (C, D),
        "motion_encoder.feature_mapping.0.bias": (C,),
        "motion_encoder.squasher.0.0.weight": (C, C, 5),
        "motion_encoder.squasher.0.0.bias": (C,),
        "motion_encoder.encoder_pos_embedding.pe": (5000, 1, C),
        "motion_encoder.encoder_linear_embedding.net.weight": (C, C),
        "motion_encoder.encoder_linear_embedding.net.bias": (C,),
        "motion_decoder.expander.0.0.weight": (C, C, 5),
        "motion_decoder.expander.0.0.bias": (C,),
        "motion_decoder.decoder_pos_embedding.pe": (5000, 1, C),
        "motion_decoder.decoder_linear_embedding.net.weight": (C, C),
        "motion_decoder.decoder_linear_embedding.net.bias": (C,),
        "motion_decoder.feature_mapping_reverse.weight": (D, C),
        "quantize.embedding.weight": (CODES, CODE_DIM),
    }
    keys |= _transformer("motion_encoder.encoder_transformer", 6)
    keys |= _transformer("motion_decoder.decoder_transformer", 6)
    for split in ("train", "val", "test"):
        for name in ("quant", "recons_exp", "recons_jaw", "total", "count"):
            keys[f"_losses.losses_{split}.{name}"] = ()
    return keys


def _official_predictor_keys(audio_dim: int) -> dict[str, tuple[int, ...]]:
    keys = {
        "feature_predictor.audio_feature_map.weight": (C, audio_dim),
        "feature_predictor.audio_feature_map.bias": (C,),
        "feature_predictor.style_embedding.weight": (C, 43),
        "feature_predictor.squasher.0.0.weight": (C, C, 5),
        "feature_predictor.squasher.0.0.bias": (C,),
        "feature_predictor.encoder_pos_embedding.pe": (5000, 1, C),
        "feature_predictor.encoder_linear_embedding.net.weight": (C, C),
        "feature_predictor.encoder_linear_embedding.net.bias": (C,),
    }
    return keys | _transformer("feature_predictor.encoder_transformer", 12)


def _random(keys: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.randn(shape) for k, shape in keys.items()}


def _official_config() -> FaceVqvaeConfig:
    """Paper sizes with HuBERT-base widths (768 -> 1536 paired); 2 HuBERT layers instead of 12 keep it fast,
    the key pattern per layer being the same."""
    config = FaceVqvaeConfig.from_yaml("official")
    config.audio_encoder.random = {"num_hidden_layers": 2}
    return config


def _official_hubert_keys(layers: int) -> dict[str, tuple[int, ...]]:
    """HuBERT-base (facebook/hubert-base-ls960) as the official stage-2 checkpoint names it: transformers'
    HubertModel under `feature_extractor.audiomodel.`, saved with the old weight_norm (weight_g, weight_v).
    Written out from those definitions, not read off our model, so that a renamed module fails the load."""
    h, conv, ffn, p = 768, 512, 3072, "feature_extractor.audiomodel."
    keys = {f"{p}masked_spec_embed": (h,)}
    # Seven bias-free convolutions (kernels 10, 3, 3, 3, 3, 2, 2); GroupNorm after the first only.
    for i, kernel in enumerate((10, 3, 3, 3, 3, 2, 2)):
        keys[f"{p}feature_extractor.conv_layers.{i}.conv.weight"] = (conv, 1 if i == 0 else conv, kernel)
    keys |= {f"{p}feature_extractor.conv_layers.0.layer_norm.{w}": (conv,) for w in ("weight", "bias")}
    keys |= {f"{p}feature_projection.layer_norm.{w}": (conv,) for w in ("weight", "bias")}
    keys |= {
        f"{p}feature_projection.projection.weight": (h, conv),
        f"{p}feature_projection.projection.bias": (h,),
    }
    # Positional convolution: 128 taps, 16 groups, weight norm over dim 2.
    keys |= {f"{p}encoder.pos_conv_embed.conv.weight_g": (1, 1, 128)}
    keys |= {f"{p}encoder.pos_conv_embed.conv.weight_v": (h, h // 16, 128)}
    keys |= {f"{p}encoder.pos_conv_embed.conv.bias": (h,)}
    keys |= {f"{p}encoder.layer_norm.{w}": (h,) for w in ("weight", "bias")}
    for i in range(layers):
        layer = f"{p}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys |= {f"{layer}attention.{proj}.weight": (h, h), f"{layer}attention.{proj}.bias": (h,)}
        for norm in ("layer_norm", "final_layer_norm"):
            keys |= {f"{layer}{norm}.weight": (h,), f"{layer}{norm}.bias": (h,)}
        keys |= {f"{layer}feed_forward.intermediate_dense.weight": (ffn, h)}
        keys |= {f"{layer}feed_forward.intermediate_dense.bias": (ffn,)}
        keys |= {f"{layer}feed_forward.output_dense.weight": (h, ffn)}
        keys |= {f"{layer}feed_forward.output_dense.bias": (h,)}
    return keys


def test_official_stage1_checkpoint_loads_strictly(tmp_path: Path) -> None:
    state = _random(_official_prior_keys())
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "prior.ckpt")
    model = build_motion_prior(FaceVqvaeConfig.from_yaml("official"))
    load_motion_prior(model, read_state_dict(tmp_path / "prior.ckpt"))
    assert torch.equal(model.quantize.embedding.weight, state["quantize.embedding.weight"])
    assert torch.equal(
        model.motion_encoder.encoder_transformer.net[11].fn.fn.l2.weight,
        state["motion_encoder.encoder_transformer.net.11.fn.fn.l2.weight"],
    )


def test_official_stage2_checkpoint_loads_strictly() -> None:
    prior = {f"motion_prior.{k}": v for k, v in _random(_official_prior_keys()).items()}
    model = build_probtalk3d(_official_config())
    state = prior | _random(_official_predictor_keys(1536)) | _random(_official_hubert_keys(layers=2))
    load_probtalk3d(model, state)
    weight_g = (
        model.feature_extractor.audiomodel.encoder.pos_conv_embed.conv.parametrizations.weight.original0
    )
    assert torch.equal(weight_g, state["feature_extractor.audiomodel.encoder.pos_conv_embed.conv.weight_g"])
    assert torch.equal(
        model.feature_predictor.style_embedding.weight, state["feature_predictor.style_embedding.weight"]
    )
    # The motion prior inside a stage-2 checkpoint also loads on its own.
    load_motion_prior(build_motion_prior(FaceVqvaeConfig.from_yaml("official")), prior)


def test_missing_or_misshaped_keys_are_reported(tiny_config: FaceVqvaeConfig) -> None:
    model = build_motion_prior(tiny_config)
    state = model.state_dict()
    del state["quantize.embedding.weight"]
    with pytest.raises(CheckpointError, match="missing 1 keys"):
        load_motion_prior(model, state)
    with pytest.raises(CheckpointError, match="size mismatch"):
        load_motion_prior(model, _random(_official_prior_keys()))


class HyperParameters:
    """Stands in for the OmegaConf objects Lightning pickles into `hyper_parameters`."""


def test_lightning_pickles_need_explicit_trust(tmp_path: Path) -> None:
    state = {"quantize.embedding.weight": torch.ones(2, 2)}
    torch.save({"state_dict": state, "hyper_parameters": HyperParameters()}, tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match="trust_pickle"):
        read_state_dict(tmp_path / "x.ckpt")
    assert torch.equal(
        read_state_dict(tmp_path / "x.ckpt", trust_pickle=True)["quantize.embedding.weight"],
        state["quantize.embedding.weight"],
    )
