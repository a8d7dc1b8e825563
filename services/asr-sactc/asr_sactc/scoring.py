"""Multi-talker WER: permutation-invariant WER, cpWER via meeteval, and overlap-ratio subsets (OA-WER)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

# Overlap-ratio subsets of the SACTC paper: (low, high] bounds on overlap duration / mixture duration.
OVERLAP_SUBSETS: dict[str, tuple[float, float]] = {"low": (0.0, 0.2), "mid": (0.2, 0.5), "high": (0.5, 1.0)}


def word_errors(ref: str, hyp: str) -> int:
    """Levenshtein distance between the word sequences (substitutions + deletions + insertions)."""
    r, h = ref.split(), hyp.split()
    row = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev_diag, row[0] = row[0], i
        for j, hw in enumerate(h, 1):
            prev_diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev_diag + (rw != hw))
    return row[-1]


def pi_word_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[int, int]:
    """Permutation-invariant errors: the minimum over assignments of hypothesis streams to reference speakers.

    The shorter side is padded with empty streams, so an extra hypothesis stream costs insertions and a
    missing one deletions (as `scoring/search_best_permutation.py` scores ref.trn permutations).

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
    """Concatenated minimum-permutation errors from meeteval (equals PI-WER for SOT outputs).

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


def overlap_subset(ratio: float) -> str | None:
    """'low' (0, 0.2], 'mid' (0.2, 0.5], 'high' (0.5, 1.0], or None for a ratio of 0."""
    for name, (low, high) in OVERLAP_SUBSETS.items():
        if low < ratio <= high:
            return name
    return None


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
    """Corpus WERs in percent; OA-WER is the mean of the low/mid/high subset WERs that have data; CER is the
    permutation-invariant character error rate."""

    wer: float
    cpwer: float
    subsets: dict[str, float] = field(default_factory=dict)
    oa_wer: float = float("nan")
    utterances: int = 0
    cer: float = float("nan")


def score_corpus(items: Iterable[tuple[Sequence[str], Sequence[str], float]]) -> MultiTalkerScore:
    """Score (reference speakers, hypothesis speakers, overlap ratio) triples.

    WER is errors summed over utterances divided by reference words summed over utterances, per subset too.
    """
    pi, cp, chars = _Tally(), _Tally(), _Tally()
    subsets = {name: _Tally() for name in OVERLAP_SUBSETS}
    count = 0
    for refs, hyps, ratio in items:
        errors, words = pi_word_errors(refs, hyps)
        pi.add(errors, words)
        cp.add(*cp_word_errors(refs, hyps))
        chars.add(*pi_char_errors(refs, hyps))
        subset = overlap_subset(ratio)
        if subset is not None:
            subsets[subset].add(errors, words)
        count += 1
    subset_wers = {name: tally.wer for name, tally in subsets.items() if tally.words}
    oa = sum(subset_wers.values()) / len(subset_wers) if subset_wers else float("nan")
    return MultiTalkerScore(pi.wer, cp.wer, subset_wers, oa, count, chars.wer)
