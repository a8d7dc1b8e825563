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
    # Per decoder layer, this prefix's self-attention keys and values [H, L, d] (decoders with a cache).
    att_cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None


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
    length: int | None = None,
) -> list[Hypothesis]:
    """One utterance: score = (1-w)·log p_att(h) + w·log ψ_ctc(h), with a 1.5×beam attention pre-beam; with
    w = 1, CTC prefix beam search over the whole vocabulary (no pre-beam, no decoder: Table I's CTC rows).

    Args:
        model: the SOT model (a decoder is needed unless ctc_weight is 1).
        encoder_out: [T, D] encoder states of one utterance (a Whisper encoder's whole window).
        beam_size: hypotheses kept per step.
        ctc_weight: w (0 = attention only, 1 = CTC only).
        max_len: maximum output tokens (default: the valid frames, as ESPnet's maxlenratio 0, within the
            decoder's position limit).
        length: valid frames of encoder_out (default T); CTC scores these, and the decoder attends to these
            unless it attends to the whole window (`decoder.full_window`, Whisper).

    Returns:
        Finished hypotheses, best first.
    """
    ctc_only = ctc_weight == 1.0
    if model.decoder is None and not ctc_only:
        raise ValueError("attention scores need a decoder; decode a CTC-only model with ctc_weight 1.0")
    eos = model.eos
    frames = encoder_out.size(0) if length is None else length
    max_len = frames if max_len is None else max_len
    decoder = model.decoder
    cached = not ctc_only and hasattr(decoder, "score_cached")
    if not ctc_only:
        memory = encoder_out if decoder.full_window else encoder_out[:frames]
        cross = decoder.cross_cache(memory) if cached else None
        if decoder.max_length is not None:
            max_len = min(max_len, decoder.max_length - len(model.sos) - 1)
    ctc = CTCPrefixScorer(model.ctc.log_softmax(encoder_out[None, :frames])[0].cpu(), model.ctc.blank, eos)
    state, psi = ctc.initial_state()
    running = [Hypothesis([], 0.0, state, psi)]
    ended: list[Hypothesis] = []
    pre_beam = min(int(1.5 * beam_size), model.vocab_size)
    for step in range(max_len + 1):
        lasts = [h.yseq[-1] if h.yseq else None for h in running]
        r_prev = torch.stack([h.ctc_state for h in running])
        if step == max_len:  # force the end at the length limit
            tops = torch.full((len(running), 1), eos)
        elif ctc_only:
            tops = _best_by_ctc(ctc, step, lasts, r_prev, min(beam_size, model.vocab_size))
        else:
            ys = torch.tensor([[*model.sos, *h.yseq] for h in running], device=encoder_out.device)
            if cached:
                past = (
                    None
                    if step == 0
                    else [
                        (
                            torch.stack([h.att_cache[i][0] for h in running]),
                            torch.stack([h.att_cache[i][1] for h in running]),
                        )
                        for i in range(len(cross))
                    ]
                )
                att, present = decoder.score_cached(ys, cross, past)
                for n, h in enumerate(running):
                    h.att_cache = [(k[n], v[n]) for k, v in present]
                att = att.double().cpu()
            else:
                att = decoder.score(ys, memory[None].expand(len(running), -1, -1)).double().cpu()
            tops = torch.topk(att, pre_beam, dim=-1).indices
        # Every running hypothesis has `step` tokens, so one CTC pass scores all of them.
        psi_all, states_all = ctc.score_batch(step, lasts, r_prev, tops)
        candidates: list[Hypothesis] = []
        for i, (h, top, psi_new, states) in enumerate(zip(running, tops, psi_all, states_all, strict=True)):
            joint = ctc_weight * (psi_new - h.ctc_psi)
            if not ctc_only:
                joint = (1 - ctc_weight) * att[i, top] + (joint if ctc_weight > 0 else 0.0)
            for j, c in enumerate(top.tolist()):
                if torch.isfinite(joint[j]):
                    candidates.append(
                        Hypothesis(
                            h.yseq + [c], h.score + float(joint[j]), states[j], float(psi_new[j]), h.att_cache
                        )
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


# Tokens scored per CTC pass when CTC alone ranks the whole vocabulary (bounds the [T, 2, N·K] state).
_CTC_CHUNK = 512


def _best_by_ctc(
    ctc: CTCPrefixScorer, step: int, lasts: list[int | None], r_prev: torch.Tensor, k: int
) -> torch.Tensor:
    """[N, k] tokens with the highest CTC prefix scores over the whole vocabulary, per hypothesis.

    CTC-only decoding (ctc_weight 1, Table I rows C3/E3) has no attention pre-beam: ESPnet scores every
    token with the prefix scorer. A hypothesis's extensions rank by ψ alone, so its best k over the whole
    vocabulary contain every extension the beam can keep: the selection is exact, only chunked for memory.
    """
    vocab = ctc.x.size(1)
    psi = torch.cat(
        [
            ctc.score_batch(
                step, lasts, r_prev, torch.arange(lo, min(lo + _CTC_CHUNK, vocab)).expand(len(lasts), -1)
            )[0]
            for lo in range(0, vocab, _CTC_CHUNK)
        ],
        dim=1,
    )
    return torch.topk(psi, k, dim=-1).indices
