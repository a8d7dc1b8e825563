"""An ESPnet-named state dict (keys and shapes written out from ESPnet's module layout) loads strictly."""

from pathlib import Path

import pytest
import torch
from asr_sactc.checkpoints import load_espnet_state_dict
from asr_sactc.config import build_model, load_config

CONFIGS = Path(__file__).resolve().parents[3] / "services" / "asr-sactc" / "configs"
VOCAB = 5002  # <blank>, <unk>, 4999 BPE pieces incl. `$`, <sos/eos>


def _linear(prefix: str, out_dim: int, in_dim: int, bias: bool = True) -> dict[str, tuple]:
    shapes = {f"{prefix}.weight": (out_dim, in_dim)}
    if bias:
        shapes[f"{prefix}.bias"] = (out_dim,)
    return shapes


def _layer_norm(prefix: str, dim: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (dim,), f"{prefix}.bias": (dim,)}


def _attention(prefix: str, d: int) -> dict[str, tuple]:
    shapes: dict[str, tuple] = {}
    for name in ("linear_q", "linear_k", "linear_v", "linear_out"):
        shapes |= _linear(f"{prefix}.{name}", d, d)
    return shapes


def espnet_sactc_shapes(
    d: int = 256,
    heads: int = 4,
    enc_ffn: int = 1024,
    enc_blocks: int = 12,
    kernel: int = 15,
    dec_ffn: int = 2048,
    dec_blocks: int = 6,
    n_mels: int = 80,
    vocab: int = VOCAB,
) -> dict:
    """Key → shape of an ESPnet ESPnetASRModel with DefaultFrontend, GlobalMVN, ConformerEncoder
    (conv2d, rel_pos latest, macaron, cnn module), TransformerDecoder and CTC, as ESPnet names them."""
    shapes: dict[str, tuple] = {
        "frontend.logmel.melmat": (512 // 2 + 1, n_mels),
        "normalize.mean": (n_mels,),
        "normalize.std": (n_mels,),
    }
    shapes |= {
        "encoder.embed.conv.0.weight": (d, 1, 3, 3),
        "encoder.embed.conv.0.bias": (d,),
        "encoder.embed.conv.2.weight": (d, d, 3, 3),
        "encoder.embed.conv.2.bias": (d,),
    }
    shapes |= _linear("encoder.embed.out.0", d, d * (((n_mels - 1) // 2 - 1) // 2))
    for i in range(enc_blocks):
        p = f"encoder.encoders.{i}"
        shapes |= _attention(f"{p}.self_attn", d)
        shapes |= _linear(f"{p}.self_attn.linear_pos", d, d, bias=False)
        shapes |= {
            f"{p}.self_attn.pos_bias_u": (heads, d // heads),
            f"{p}.self_attn.pos_bias_v": (heads, d // heads),
        }
        for ff in ("feed_forward", "feed_forward_macaron"):
            shapes |= _linear(f"{p}.{ff}.w_1", enc_ffn, d) | _linear(f"{p}.{ff}.w_2", d, enc_ffn)
        c = f"{p}.conv_module"
        shapes |= {
            f"{c}.pointwise_conv1.weight": (2 * d, d, 1),
            f"{c}.pointwise_conv1.bias": (2 * d,),
            f"{c}.depthwise_conv.weight": (d, 1, kernel),
            f"{c}.depthwise_conv.bias": (d,),
            f"{c}.pointwise_conv2.weight": (d, d, 1),
            f"{c}.pointwise_conv2.bias": (d,),
            f"{c}.norm.weight": (d,),
            f"{c}.norm.bias": (d,),
            f"{c}.norm.running_mean": (d,),
            f"{c}.norm.running_var": (d,),
            f"{c}.norm.num_batches_tracked": (),
        }
        for norm in ("norm_ff", "norm_mha", "norm_ff_macaron", "norm_conv", "norm_final"):
            shapes |= _layer_norm(f"{p}.{norm}", d)
    shapes |= _layer_norm("encoder.after_norm", d)
    shapes["decoder.embed.0.weight"] = (vocab, d)
    for i in range(dec_blocks):
        p = f"decoder.decoders.{i}"
        shapes |= _attention(f"{p}.self_attn", d) | _attention(f"{p}.src_attn", d)
        shapes |= _linear(f"{p}.feed_forward.w_1", dec_ffn, d) | _linear(f"{p}.feed_forward.w_2", d, dec_ffn)
        for norm in ("norm1", "norm2", "norm3"):
            shapes |= _layer_norm(f"{p}.{norm}", d)
    shapes |= _layer_norm("decoder.after_norm", d) | _linear("decoder.output_layer", vocab, d)
    shapes |= _linear("ctc.ctc_lo", vocab, d)
    return shapes


def _espnet_state_dict(shapes: dict[str, tuple]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.startswith("normalize."):
            state[key] = (
                torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5
            )  # ESPnet keeps numpy float64
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state


@pytest.fixture(scope="module")
def full_model():
    return build_model(load_config(CONFIGS / "full.yaml"), VOCAB)


def test_full_config_has_exactly_the_espnet_keys_and_shapes(full_model):
    ours = {k: tuple(v.shape) for k, v in full_model.state_dict().items()}
    assert ours == espnet_sactc_shapes()


def test_espnet_state_dict_loads_strictly_into_full_model(full_model, tmp_path):
    state = _espnet_state_dict(espnet_sactc_shapes())
    path = tmp_path / "valid.acc.ave.pth"
    torch.save(state, path)
    load_espnet_state_dict(full_model, path, strict=True)
    loaded = full_model.state_dict()
    torch.testing.assert_close(
        loaded["encoder.encoders.11.self_attn.pos_bias_u"], state["encoder.encoders.11.self_attn.pos_bias_u"]
    )
    torch.testing.assert_close(loaded["normalize.std"], state["normalize.std"])
    # The model's own load_state_dict(strict=True) accepts it as well.
    full_model.load_state_dict(state, strict=True)


def test_trainer_checkpoint_with_ddp_prefix_loads(full_model):
    state = _espnet_state_dict(espnet_sactc_shapes())
    load_espnet_state_dict(full_model, {"model": {f"module.{k}": v for k, v in state.items()}})


def test_wrong_decoder_depth_is_reported(full_model):
    state = _espnet_state_dict(espnet_sactc_shapes(dec_blocks=8))  # the paper's text says 8 blocks
    with pytest.raises(ValueError, match="unexpected: decoder.decoders.6"):
        load_espnet_state_dict(full_model, state)
