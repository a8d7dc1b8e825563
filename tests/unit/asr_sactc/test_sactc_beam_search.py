"""Joint CTC/attention beam search and CTC prefix scores on a tiny model."""

import itertools
import math
from pathlib import Path

import pytest
import torch
from asr_sactc.beam_search import greedy_ctc, joint_beam_search
from asr_sactc.config import build_model, build_tokenizer, load_config
from asr_sactc.ctc_prefix_score import CTCPrefixScorer

CONFIGS = Path(__file__).resolve().parents[3] / "services" / "asr-sactc" / "configs"


def test_beam_search_returns_a_hypothesis_on_the_tiny_model():
    config = load_config(CONFIGS / "tiny.yaml")
    tokenizer = build_tokenizer(config)
    torch.manual_seed(0)
    model = build_model(config, len(tokenizer.token_list)).eval()
    with torch.no_grad():
        enc, lens = model.encode(0.1 * torch.randn(1, 8000), torch.tensor([8000]))
    hyps = joint_beam_search(model, enc[0, : int(lens[0])], beam_size=4, ctc_weight=0.3, max_len=12)
    assert hyps and all(0 < t < model.eos for t in hyps[0].yseq)
    assert math.isfinite(hyps[0].score)
    assert hyps == sorted(hyps, key=lambda h: h.score, reverse=True)
    assert isinstance(tokenizer.ids2text(hyps[0].yseq), str)
    attention_only = joint_beam_search(model, enc[0, : int(lens[0])], beam_size=2, ctc_weight=0.0, max_len=5)
    assert math.isfinite(attention_only[0].score) and len(attention_only[0].yseq) <= 5


def test_greedy_ctc_merges_repeats_and_drops_blanks():
    frames = torch.tensor([0, 3, 3, 0, 3, 2, 2, 4, 0])
    log_probs = torch.nn.functional.one_hot(frames, 5).float().log()
    assert greedy_ctc(log_probs, 9) == [3, 3, 2, 4]
    assert greedy_ctc(log_probs, 3) == [3]


def test_ctc_prefix_score_equals_brute_force_prefix_probability():
    torch.manual_seed(0)
    frames, vocab, blank, eos = 4, 4, 0, 3
    log_probs = torch.randn(frames, vocab, dtype=torch.float64).log_softmax(-1)
    scorer = CTCPrefixScorer(log_probs, blank, eos)
    state, psi0 = scorer.initial_state()
    psi1, states = scorer.score(0, None, state, torch.tensor([1, 2]))
    psi2, _ = scorer.score(1, 1, states[0], torch.tensor([1, 2, eos]))

    def collapse(path):
        return [k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k)]

    def prefix_prob(prefix, exact=False):
        total = 0.0
        for path in itertools.product(range(vocab), repeat=frames):
            seq = collapse(path)
            if (seq == prefix) if exact else (seq[: len(prefix)] == prefix):
                total += math.exp(sum(float(log_probs[t, k]) for t, k in enumerate(path)))
        return math.log(total)

    assert psi0 == 0.0
    assert float(psi1[0]) == pytest.approx(prefix_prob([1]), rel=1e-9)
    assert float(psi2[0]) == pytest.approx(prefix_prob([1, 1]), rel=1e-9)
    assert float(psi2[1]) == pytest.approx(prefix_prob([1, 2]), rel=1e-9)
    assert float(psi2[2]) == pytest.approx(prefix_prob([1], exact=True), rel=1e-9)


def test_ctc_only_search_needs_no_decoder_and_finds_the_most_probable_labelling():
    """ctc_weight 1 (Table I's CTC rows): no attention pre-beam. A beam above the number of prefixes makes
    the search exhaustive, so its best must be the brute-force argmax of P(l|x), scored log P(l|x)."""
    from asr_sactc.model.ctc import CTC

    torch.manual_seed(1)
    frames, vocab, blank, eos = 4, 5, 0, 4
    ctc = CTC(vocab, vocab, blank=blank)
    with torch.no_grad():  # identity head: the encoder states are the frame logits
        ctc.ctc_lo.weight.copy_(torch.eye(vocab))
        ctc.ctc_lo.bias.zero_()
    logits = 2 * torch.randn(frames, vocab)
    logits[:, eos] = -30.0  # CTC never emits the end token itself
    model = type(
        "CtcOnly", (), {"ctc": ctc, "decoder": None, "eos": eos, "sos": (eos,), "vocab_size": vocab}
    )()
    best = joint_beam_search(model, logits, beam_size=200, ctc_weight=1.0)[0]
    with pytest.raises(ValueError, match="decoder"):
        joint_beam_search(model, logits, beam_size=2, ctc_weight=0.3)

    log_probs = logits.double().log_softmax(-1)
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab - 1), repeat=frames):
        seq = tuple(k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k))
        totals[seq] = totals.get(seq, 0.0) + math.exp(sum(float(log_probs[t, k]) for t, k in enumerate(path)))
    expected = max(totals, key=totals.get)
    assert tuple(best.yseq) == expected
    assert best.score == pytest.approx(math.log(totals[expected]), abs=1e-5)
