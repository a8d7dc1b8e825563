"""Joint CTC/attention beam search (beam 10, ctc_weight 0.3, no LM) and greedy CTC decoding."""

from dataclasses import dataclass

import torch

from asr_sactc.ctc_prefix_score import CTCPrefixScorer
from asr_sactc.model.espnet_model import ESPnetASRModel


@dataclass
class Hypothesis:
    """A decoded prefix: token ids without `<sos>`/`<eos>`, and its joint log score."""

    yseq: list[int]
    score: float
    ctc_state: torch.Tensor | None = None
    ctc_psi: float = 0.0


def greedy_ctc(log_probs: torch.Tensor, length: int, blank: int = 0) -> list[int]:
    """Best path: frame argmax, merge repeats, drop blanks. log_probs [T, V] → token ids."""
    best = torch.unique_consecutive(log_probs[:length].argmax(dim=-1))
    return [int(t) for t in best if int(t) != blank]


@torch.no_grad()
def joint_beam_search(
    model: ESPnetASRModel,
    encoder_out: torch.Tensor,
    beam_size: int = 10,
    ctc_weight: float = 0.3,
    max_len: int | None = None,
) -> list[Hypothesis]:
    """One utterance: score = (1-w)·log p_att(h) + w·log ψ_ctc(h), with a 1.5×beam attention pre-beam.

    Args:
        model: a model with a decoder.
        encoder_out: [T, D] encoder states of one utterance.
        beam_size: hypotheses kept per step.
        ctc_weight: w (0 = attention only).
        max_len: maximum output tokens (default T, as ESPnet's maxlenratio 0).

    Returns:
        Finished hypotheses, best first.
    """
    if model.decoder is None:
        raise ValueError("joint beam search needs a decoder; use greedy_ctc for CTC-only models")
    sos = eos = model.eos
    frames = encoder_out.size(0)
    max_len = frames if max_len is None else max_len
    ctc = CTCPrefixScorer(model.ctc.log_softmax(encoder_out[None])[0].cpu(), blank=0, eos=eos)
    state, psi = ctc.initial_state()
    running = [Hypothesis([], 0.0, state, psi)]
    ended: list[Hypothesis] = []
    pre_beam = min(int(1.5 * beam_size), model.vocab_size)
    for step in range(max_len + 1):
        ys = torch.tensor([[sos, *h.yseq] for h in running], device=encoder_out.device)
        att = model.decoder.score(ys, encoder_out[None].expand(len(running), -1, -1)).double().cpu()
        candidates: list[Hypothesis] = []
        if step == max_len:  # force the end at the length limit
            tops = torch.full((len(running), 1), eos)
        else:
            tops = torch.topk(att, pre_beam, dim=-1).indices
        # Every running hypothesis has `step` tokens, so one CTC pass scores all of them.
        psi_all, states_all = ctc.score_batch(
            step,
            [h.yseq[-1] if h.yseq else None for h in running],
            torch.stack([h.ctc_state for h in running]),
            tops,
        )
        for h, att_scores, top, psi_new, states in zip(running, att, tops, psi_all, states_all, strict=True):
            joint = (1 - ctc_weight) * att_scores[top]
            if ctc_weight > 0:  # 0 · (-inf) would be NaN for prefixes CTC rules out
                joint = joint + ctc_weight * (psi_new - h.ctc_psi)
            for j, c in enumerate(top.tolist()):
                if torch.isfinite(joint[j]):
                    candidates.append(
                        Hypothesis(h.yseq + [c], h.score + float(joint[j]), states[j], float(psi_new[j]))
                    )
        candidates.sort(key=lambda h: h.score, reverse=True)
        running = []
        for h in candidates[:beam_size]:
            if h.yseq[-1] == eos:
                ended.append(Hypothesis(h.yseq[:-1], h.score))
            else:
                running.append(h)
        # Both score terms only decrease as a prefix grows, so no running hypothesis can beat this one.
        best_ended = max((h.score for h in ended), default=float("-inf"))
        if not running or running[0].score <= best_ended:
            break
    return sorted(ended, key=lambda h: h.score, reverse=True) or [Hypothesis([], float("-inf"))]
