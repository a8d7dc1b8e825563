"""Tiny SOT+SACTC model: forward/backward for each CTC objective, one training step, bad options."""

from pathlib import Path

import pytest
import torch
from asr_sactc.config import build_model, build_tokenizer, load_config
from asr_sactc.model.conformer_encoder import ConformerEncoder
from asr_sactc.model.ctc import CTC
from asr_sactc.model.espnet_model import add_sos_eos

CONFIGS = Path(__file__).resolve().parents[3] / "services" / "asr-sactc" / "configs"


def _tiny(ctc_type: str = "sactc"):
    config = load_config(CONFIGS / "tiny.yaml")
    config["ctc_conf"]["ctc_type"] = ctc_type
    tokenizer = build_tokenizer(config)
    torch.manual_seed(0)
    return build_model(config, len(tokenizer.token_list)), tokenizer


def _batch(tokenizer, texts=("AB CD $ EF G", "HI $ J")):
    gen = torch.Generator().manual_seed(1)
    speech = 0.1 * torch.randn(len(texts), 12000, generator=gen)
    speech_lengths = torch.tensor([12000, 9000][: len(texts)])
    ids = [tokenizer.text2ids(t) for t in texts]
    text = torch.full((len(texts), max(map(len, ids))), -1)
    for i, seq in enumerate(ids):
        text[i, : len(seq)] = torch.tensor(seq)
    return speech, speech_lengths, text, torch.tensor([len(s) for s in ids])


@pytest.mark.parametrize("ctc_type", ["builtin", "sactc"])
def test_forward_backward_gives_finite_loss_and_gradients(ctc_type: str):
    model, tokenizer = _tiny(ctc_type)
    loss, stats = model(*_batch(tokenizer))
    loss.backward()
    assert torch.isfinite(loss)
    assert set(stats) == {"loss", "loss_ctc", "loss_att", "acc"}
    assert stats["loss"] == pytest.approx(0.3 * stats["loss_ctc"] + 0.7 * stats["loss_att"], rel=1e-5)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_encoder_output_rate_is_32_ms():
    model, tokenizer = _tiny()
    model.eval()
    speech, speech_lengths, _, _ = _batch(tokenizer)
    out, out_lens = model.encode(speech, speech_lengths)
    frames = int(speech_lengths[0]) // 128 + 1  # 8 ms hop
    expected = ((frames - 1) // 2 - 1) // 2  # two 3x3 stride-2 convolutions: 4 x 8 ms = 32 ms
    assert out.shape == (2, expected, 64)
    assert int(out_lens[0]) == expected and int(out_lens[1]) < expected


def test_one_optimiser_step_lowers_the_joint_loss():
    model, tokenizer = _tiny()
    model.eval()  # no dropout or SpecAugment, so the two evaluations see the same function
    batch = _batch(tokenizer)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    before, _ = model(*batch)
    before.backward()
    optimiser.step()
    with torch.no_grad():
        after, _ = model(*batch)
    assert float(after) < float(before.detach())


def test_add_sos_eos_layout():
    ys = torch.tensor([[5, 6, 7], [8, -1, -1]])
    ys_in, ys_out = add_sos_eos(ys, torch.tensor([3, 1]), sos=(31,), eos=31, ignore_id=-1)
    assert ys_in.tolist() == [[31, 5, 6, 7], [31, 8, 31, 31]]
    assert ys_out.tolist() == [[5, 6, 7, 31], [8, 31, -1, -1]]
    # A Whisper-style prompt: only the last prompt position predicts the first token.
    ys_in, ys_out = add_sos_eos(ys, torch.tensor([3, 1]), sos=(40, 41, 42), eos=30, ignore_id=-1)
    assert ys_in.tolist() == [[40, 41, 42, 5, 6, 7], [40, 41, 42, 8, 30, 30]]
    assert ys_out.tolist() == [[-1, -1, 5, 6, 7, 30], [-1, -1, 8, 30, -1, -1]]


@pytest.mark.parametrize(
    "option",
    [
        {"rel_pos_type": "legacy"},
        {"input_layer": "linear"},
        {"activation_type": "gelu"},
        {"normalize_before": False},
        {"cnn_module_kernel": 8},
    ],
)
def test_unsupported_encoder_options_raise(option: dict):
    with pytest.raises(ValueError):
        ConformerEncoder(40, output_size=64, attention_heads=2, linear_units=128, num_blocks=1, **option)


def test_unknown_ctc_type_and_registry_names_raise():
    with pytest.raises(ValueError):
        CTC(32, 64, ctc_type="brctc")
    config = load_config(CONFIGS / "tiny.yaml")
    config["encoder"] = "branchformer"
    with pytest.raises(ValueError):
        build_model(config, 32)
