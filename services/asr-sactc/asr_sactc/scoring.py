"""Multi-talker WER: the paper's permutation-invariant WER (its official scoring script), cpWER via meeteval,
and the overlap-ratio subsets and their mean (OA-WER)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import permutations

import numpy as np

from asr_sactc.tokenizer import SC

# Overlap-ratio subsets of `scoring/subset_by_ovlp_rate.py`: rate <= 0.20, <= 0.50, <= 1.00, in that order, so
# "low" includes 0 (a mixture without overlap).
OVERLAP_SUBSETS: dict[str, float] = {"low": 0.2, "mid": 0.5, "high": 1.0}


def word_errors(ref: str, hyp: str) -> int:
    """Levenshtein distance between the word sequences (substitutions + deletions + insertions)."""
    return _edit_distance(ref.split(), hyp.split())


def _edit_distance(r: Sequence[str], h: Sequence[str]) -> int:
    row = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev_diag, row[0] = row[0], i
        for j, hw in enumerate(h, 1):
            prev_diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev_diag + (rw != hw))
    return row[-1]


def paper_word_errors(refs: Sequence[str], hyp_sot: str) -> tuple[int, int]:
    """The paper's WER, as `scoring/search_best_permutation.py` computes it for one utterance.

    The hypothesis loses its speaker changes (`hyp.replace(' $ ', ' ')`): one word stream, whose `$`
    positions are never checked. Only the reference speakers are permuted, each permutation joined into one
    stream; the script keeps the permutation of lowest WER (the last one on ties, from its `<=`), computing
    WER on `strip().split(' ')` words, and sclite then scores the kept pair. Errors here are the Levenshtein
    distance of that pair (sclite's weighted alignment can split the same total differently, never count
    more). It is at most cpWER on the same output, and it is not cpWER.

    Args:
        refs: reference transcript of each speaker.
        hyp_sot: the serialized hypothesis, speakers separated by ` $ ` (a line of hyp.trn).

    Returns:
        (errors, reference words).
    """
    if len(refs) > 6:
        raise ValueError(f"{len(refs)} speakers: the script's n! permutations are meant for 2 or 3")
    hyp = hyp_sot.strip().replace(f" {SC} ", " ")
    best_ref, best_wer = " ".join(refs), float("inf")
    for order in permutations(refs):
        ref = " ".join(order)
        # The script's split(' ') keeps empty strings as words; they only steer the choice.
        ref_words = ref.strip().split(" ")
        wer = _edit_distance(ref_words, hyp.split(" ")) / len(ref_words)
        if wer <= best_wer:
            best_wer, best_ref = wer, ref
    return word_errors(best_ref, hyp), len(best_ref.split())


def pi_word_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[int, int]:
    """Speaker-attributed errors: the minimum over assignments of hypothesis streams to reference speakers,
    each stream scored against its speaker (equal to meeteval's cpWER; not the paper's WER, see
    `paper_word_errors`).

    The shorter side is padded with empty streams, so an extra hypothesis stream costs insertions and a
    missing one deletions.

    Returns:
        (errors, reference words).
    """
    from scipy.optimize import linear_sum_assignment

    n = max(len(refs), len(hyps))
    refs_p = list(refs) + [""] * (n - len(refs))
    hyps_p = list(hyps) + [""] * (n - len(hyps))
    cost = np.array([[word_errors(r, h) for h in hyps_p] for r in refs_p]).reshape(n, n)
    # The best permutation is a minimum-cost assignment: Hungarian, not n! permutations (a looping
    # decoder can emit a dozen speaker changes).
    rows, cols = linear_sum_assignment(cost)
    return int(cost[rows, cols].sum()), sum(len(r.split()) for r in refs)


def pi_char_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[int, int]:
    """pi_word_errors on characters, a word boundary counting as one character (PI-CER).

    Returns:
        (errors, reference characters).
    """
    return pi_word_errors([_characters(r) for r in refs], [_characters(h) for h in hyps])


def _characters(text: str) -> str:
    # "_" marks the word boundary: it is no character of the transcripts, so it only matches itself.
    return " ".join(" ".join(text.split()).replace(" ", "_"))


def cp_word_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[int, int]:
    """Concatenated minimum-permutation errors (cpWER) from meeteval.

    Returns:
        (errors, reference words).
    """
    from meeteval.wer import cp_word_error_rate

    result = cp_word_error_rate(
        {f"r{i}": t for i, t in enumerate(refs)},
        {f"h{i}": t for i, t in enumerate(hyps)},
        reference_sort=False,
        hypothesis_sort=False,
    )
    return result.errors, result.length


def overlap_ratio(delays: Sequence[float], durations: Sequence[float]) -> float:
    """Time with two or more active speakers divided by the mixture duration (LibriSpeechMix layout)."""
    events = sorted([(d, 1) for d in delays] + [(d + u, -1) for d, u in zip(delays, durations, strict=True)])
    total = max(d + u for d, u in zip(delays, durations, strict=True)) - min(delays)
    active, last, overlap = 0, events[0][0], 0.0
    for time, step in events:
        if active >= 2:
            overlap += time - last
        active, last = active + step, time
    return overlap / total if total > 0 else 0.0


def overlap_subset(ratio: float) -> str:
    """'low' [0, 0.2], 'mid' (0.2, 0.5], 'high' (0.5, 1.0], as the official script bins utt2ovlp_rate."""
    for name, upper in OVERLAP_SUBSETS.items():
        if ratio <= upper:
            return name
    raise ValueError(f"overlap ratio {ratio} is above 1")


@dataclass
class _Tally:
    errors: int = 0
    words: int = 0

    def add(self, errors: int, words: int) -> None:
        self.errors += errors
        self.words += words

    @property
    def wer(self) -> float:
        return 100.0 * self.errors / self.words if self.words else float("nan")


@dataclass
class MultiTalkerScore:
    """Corpus error rates in percent: `wer` the paper's (`paper_word_errors`), per overlap subset too, and
    OA-WER the mean of the subset WERs that have data; `cpwer` meeteval's speaker-attributed cpWER; `cer`
    the speaker-attributed character error rate (`pi_char_errors`)."""

    wer: float
    cpwer: float
    subsets: dict[str, float] = field(default_factory=dict)
    oa_wer: float = float("nan")
    utterances: int = 0
    cer: float = float("nan")


def score_corpus(items: Iterable[tuple[Sequence[str], Sequence[str], float]]) -> MultiTalkerScore:
    """Score (reference speakers, hypothesis speakers in SOT order, overlap ratio) triples.

    Each rate is errors summed over utterances divided by reference words summed over utterances (sclite's
    corpus WER), per subset too. The hypothesis line the paper's WER reads is the streams joined by ` $ `.
    """
    paper, cp, chars = _Tally(), _Tally(), _Tally()
    subsets = {name: _Tally() for name in OVERLAP_SUBSETS}
    count = 0
    for refs, hyps, ratio in items:
        errors, words = paper_word_errors(refs, " ".join(f" {SC} ".join(hyps).split()))
        paper.add(errors, words)
        subsets[overlap_subset(ratio)].add(errors, words)
        cp.add(*cp_word_errors(refs, hyps))
        chars.add(*pi_char_errors(refs, hyps))
        count += 1
    subset_wers = {name: tally.wer for name, tally in subsets.items() if tally.words}
    oa = sum(subset_wers.values()) / len(subset_wers) if subset_wers else float("nan")
    return MultiTalkerScore(paper.wer, cp.wer, subset_wers, oa, count, chars.wer)
