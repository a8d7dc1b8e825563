"""Tests for the Speaker-Aware CTC loss against plain CTC, brute-force path sums and toy lattices."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from asr_sactc.sactc import SpeakerAwareCTCLoss, speaker_log_risk

SC = 2


def _random_batch(seed: int, batch: int = 6, frames: int = 40, vocab: int = 9, labels: int = 10):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, frames, vocab, dtype=torch.float64, generator=gen)
    input_lengths = torch.randint(labels * 2 + 2, frames + 1, (batch,), generator=gen)
    input_lengths[0] = frames
    target_lengths = torch.randint(1, labels + 1, (batch,), generator=gen)
    targets = torch.randint(3, vocab, (batch, labels), generator=gen)
    return logits, targets, input_lengths, target_lengths


def test_risk_factor_zero_equals_ctc_loss_and_gradient():
    logits, targets, input_lengths, target_lengths = _random_batch(0)
    targets[:, 3] = SC  # <sc> present, but λ = 0 switches the risk off as in the released code
    logits.requires_grad_()
    ref = F.ctc_loss(
        logits.log_softmax(-1).transpose(0, 1), targets, input_lengths, target_lengths, reduction="none"
    )
    (ref_grad,) = torch.autograd.grad(ref.sum(), logits)
    ours = SpeakerAwareCTCLoss(risk_factor=0.0, reduction="none")(
        logits.log_softmax(-1), targets, input_lengths, target_lengths
    )
    (grad,) = torch.autograd.grad(ours.sum(), logits)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("risk_factor", [5.0, 15.0, 40.0])
def test_single_speaker_label_equals_ctc_for_any_risk_factor(risk_factor: float):
    logits, targets, input_lengths, target_lengths = _random_batch(1)
    log_probs = logits.log_softmax(-1)
    ref = F.ctc_loss(log_probs.transpose(0, 1), targets, input_lengths, target_lengths, reduction="none")
    ours = SpeakerAwareCTCLoss(risk_factor=risk_factor, reduction="none")(
        log_probs, targets, input_lengths, target_lengths
    )
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def _brute_force_sactc(log_probs, target, risk):
    """-(1/U) Σ_u log Σ_paths P(path) w_u(last frame of u), enumerating every alignment."""
    frames, vocab = log_probs.shape
    num_u = len(target)
    per_token = [0.0] * num_u
    for path in itertools.product(range(vocab), repeat=frames):
        collapsed, ends, prev = [], [], None
        for t, k in enumerate(path):
            if k != 0 and k != prev:
                collapsed.append(k)
                ends.append(t)
            elif k != 0 and k == prev:
                ends[-1] = t
            prev = k
        if collapsed != target:
            continue
        prob = math.exp(sum(float(log_probs[t, k]) for t, k in enumerate(path)))
        for u in range(num_u):
            per_token[u] += prob * math.exp(float(risk[u, ends[u]]))
    return -sum(math.log(p) for p in per_token) / num_u


@pytest.mark.parametrize("order", ["code", "paper"])
def test_matches_brute_force_path_enumeration(order: str):
    gen = torch.Generator().manual_seed(3)
    frames, vocab = 7, 4
    target = [3, SC, 1, 1]  # includes a repeated label, which forces a blank between the two 1s
    log_probs = torch.randn(1, frames, vocab, dtype=torch.float64, generator=gen).log_softmax(-1)
    lengths = torch.tensor([frames]), torch.tensor([len(target)])
    targets = torch.tensor([target])
    risk = speaker_log_risk(targets, lengths[0], lengths[1], frames, 15.0, SC, order)[0]
    expected = _brute_force_sactc(log_probs[0], target, risk)
    ours = SpeakerAwareCTCLoss(risk_factor=15.0, order=order)(log_probs, targets, *lengths)
    assert float(ours) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("order", ["code", "paper"])
def test_gradients_match_finite_differences(order: str):
    logits, targets, input_lengths, target_lengths = _random_batch(2, batch=3, frames=14, vocab=5, labels=5)
    targets[:, 2] = SC
    target_lengths = target_lengths.clamp(min=4)
    log_probs = logits.log_softmax(-1).detach().requires_grad_()
    loss = SpeakerAwareCTCLoss(risk_factor=15.0, order=order, reduction="none")
    assert torch.autograd.gradcheck(
        lambda x: loss(x, targets, input_lengths, target_lengths),
        (log_probs,),
        eps=1e-6,
        atol=1e-6,
        fast_mode=True,
    )


def test_gradients_finite_on_peaked_float32_posteriors():
    logits, targets, input_lengths, target_lengths = _random_batch(4, batch=4, frames=60, vocab=30, labels=20)
    targets[:, 5] = SC
    logits = (30.0 * logits).float().requires_grad_()
    log_probs = logits.log_softmax(-1)
    # A label ruled out on some frames (log-probability -inf inside the lattice) must not poison the gradient.
    ruled_out = (torch.arange(60) < 5)[:, None] & (torch.arange(30) == int(targets[0, 0]))[None, :]
    log_probs = log_probs.masked_fill(ruled_out, float("-inf"))
    loss = SpeakerAwareCTCLoss()(log_probs, targets, input_lengths, target_lengths)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


def test_input_shorter_than_label_gives_zero_loss_and_gradient():
    log_probs = torch.randn(2, 5, 6, dtype=torch.float64).log_softmax(-1).requires_grad_()
    targets = torch.tensor([[3, 4, SC, 5, 3, 4, 5], [3, SC, 4, 0, 0, 0, 0]])
    loss = SpeakerAwareCTCLoss(reduction="none")(
        log_probs, targets, torch.tensor([5, 5]), torch.tensor([7, 3])
    )
    loss.sum().backward()
    assert loss[0] == 0.0 and loss[1] > 0.0
    assert (log_probs.grad[0] == 0).all()


def _toy_lattice(spread: bool, frames: int = 40, vocab: int = 8) -> torch.Tensor:
    """Sharp posteriors for the label [3, 4, 5, <sc>, 6, 7, 5]: tokens spread over the utterance (speaker 1
    early, speaker 2 late) or bunched around the speaker boundary b = 4/7."""
    label = [3, 4, 5, SC, 6, 7, 5]
    if spread:
        frame_of = [2, 5, 8, 22, 32, 35, 38]
    else:
        centre = round(frames * 4 / 7)
        frame_of = [centre - 6, centre - 4, centre - 2, centre, centre + 2, centre + 4, centre + 6]
    logits = torch.zeros(frames, vocab, dtype=torch.float64)
    logits[:, 0] = 8.0
    for k, t in zip(label, frame_of, strict=True):
        logits[t] = 0.0
        logits[t, k] = 8.0
    return logits.log_softmax(-1)[None], torch.tensor([label])


@pytest.mark.parametrize("order, preferred", [("paper", "spread"), ("code", "bunched")])
def test_toy_lattice_prefers_the_ordering_its_weights_reward(order: str, preferred: str):
    lengths = torch.tensor([40]), torch.tensor([7])
    spread, targets = _toy_lattice(spread=True)
    bunched, _ = _toy_lattice(spread=False)
    ctc = SpeakerAwareCTCLoss(risk_factor=0.0)
    # Plain CTC is indifferent (to within a few hundredths of a nat) between the two alignments.
    assert abs(float(ctc(spread, targets, *lengths)) - float(ctc(bunched, targets, *lengths))) < 0.05
    sactc = SpeakerAwareCTCLoss(risk_factor=15.0, order=order)
    losses = {
        "spread": float(sactc(spread, targets, *lengths)),
        "bunched": float(sactc(bunched, targets, *lengths)),
    }
    other = "bunched" if preferred == "spread" else "spread"
    assert losses[preferred] + 0.1 < losses[other]


def test_code_order_penalises_early_speaker_one_that_the_paper_order_accepts():
    lengths = torch.tensor([40]), torch.tensor([7])
    spread, targets = _toy_lattice(spread=True)
    ctc = float(SpeakerAwareCTCLoss(risk_factor=0.0)(spread, targets, *lengths))
    paper = float(SpeakerAwareCTCLoss(order="paper")(spread, targets, *lengths))
    code = float(SpeakerAwareCTCLoss(order="code")(spread, targets, *lengths))
    assert paper - ctc < 0.1
    assert code - paper > 2.0


def test_bad_options_raise():
    with pytest.raises(ValueError):
        SpeakerAwareCTCLoss(order="reverse")
    with pytest.raises(ValueError):
        SpeakerAwareCTCLoss(risk_factor=-1.0)
    with pytest.raises(ValueError):
        SpeakerAwareCTCLoss(reduction="max")
