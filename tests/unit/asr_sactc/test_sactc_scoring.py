"""The paper's PI-WER (its official script), cpWER (meeteval) and overlap subsets on hand-made cases."""

import math

import meeteval
import pytest
from asr_sactc.scoring import (
    cp_word_errors,
    overlap_ratio,
    overlap_subset,
    paper_word_errors,
    pi_word_errors,
    score_corpus,
    word_errors,
)

CASES = [
    # (reference speakers, hypothesis speakers)
    (["the cat sat", "on the mat"], ["on the mat", "the cat sat"]),  # swapped order, perfect
    (["a b c d", "e f"], ["e f g", "a x c"]),  # 1 insertion + 1 sub + 1 del
    (["one two three", "four five"], ["one two three four five"]),  # speakers merged
    (["hello world"], ["hello", "world peace"]),  # a false-alarm stream
    (["x y z", "p q", "r s t u"], ["r s t", "p q", "x y z"]),  # three speakers
]


def test_word_errors_hand_values():
    assert word_errors("a b c d", "a x c") == 2
    assert word_errors("", "a b") == 2
    assert word_errors("a b", "") == 2


def test_pi_wer_hand_computed():
    # Best assignment: "a b c d"↔"a x c" (1 sub + 1 del) and "e f"↔"e f g" (1 ins): 3 errors / 6 words.
    assert pi_word_errors(["a b c d", "e f"], ["e f g", "a x c"]) == (3, 6)
    # Merged speakers: "one two three"↔merged (2 ins) + "four five"↔"" (2 del) = 4 errors / 5 words.
    assert pi_word_errors(["one two three", "four five"], ["one two three four five"]) == (4, 5)


@pytest.mark.parametrize("refs, hyps", CASES)
def test_pi_wer_and_cp_wer_agree_with_meeteval(refs, hyps):
    result = meeteval.wer.cp_word_error_rate(
        {f"spk{i}": t for i, t in enumerate(refs)},
        {f"h{i}": t for i, t in enumerate(hyps)},
        reference_sort=False,
        hypothesis_sort=False,
    )
    assert pi_word_errors(refs, hyps) == (result.errors, result.length)
    assert cp_word_errors(refs, hyps) == (result.errors, result.length)


def test_overlap_ratio_and_subsets():
    assert overlap_ratio([0.0, 1.0], [2.0, 3.0]) == pytest.approx(0.25)  # 1 s of 4 s overlapped
    assert overlap_ratio([0.0, 5.0], [2.0, 1.0]) == 0.0
    assert overlap_ratio([0.0, 0.0], [4.0, 4.0]) == pytest.approx(1.0)
    # subset_by_ovlp_rate.py: rate <= 0.20 is "low", so a mixture without overlap counts there.
    assert [overlap_subset(r) for r in (0.0, 0.1, 0.2, 0.35, 0.5, 0.9, 1.0)] == [
        "low",
        "low",
        "low",
        "mid",
        "mid",
        "high",
        "high",
    ]
    with pytest.raises(ValueError):
        overlap_subset(1.2)


@pytest.mark.parametrize(
    "refs, hyp, expected",
    [
        # Speaker changes are removed, never scored: a wrong split costs nothing...
        (["a b", "c d"], "a $ b c d", (0, 4)),
        (["a b", "c d"], "a b c d", (0, 4)),
        # ...and the best reference order is chosen against the one word stream.
        (["a b", "c d"], "c d $ a b", (0, 4)),
        (["a b c", "d e"], "d e $ a x c", (1, 5)),
        # Words moved across the speaker change still count as correct in one stream.
        (["one two three", "four five"], "one two $ three four five", (0, 5)),
        # Three speakers: all six orders are tried.
        (["x y", "p q", "r s"], "r s $ x y $ p q", (0, 6)),
        # A `$` at the very start has no space before it, so the script leaves it as a word (an insertion).
        (["a b", "c d"], "$ a b c d", (1, 4)),
        # One speaker: no permutation to choose; a false `$` split is free as well.
        (["hello world"], "hello $ world", (0, 2)),
    ],
)
def test_paper_wer_follows_the_official_script(refs, hyp, expected):
    assert paper_word_errors(refs, hyp) == expected


def test_paper_wer_never_exceeds_cpwer_and_differs_when_the_split_is_wrong():
    refs = ["one two three", "four five"]
    hyps = ["one two", "three four five"]  # the speaker change one word early
    assert paper_word_errors(refs, " $ ".join(hyps)) == (0, 5)
    assert cp_word_errors(refs, hyps) == (2, 5)
    for refs, hyps in CASES:
        assert paper_word_errors(refs, " $ ".join(hyps))[0] <= cp_word_errors(refs, hyps)[0]


def test_score_corpus_subsets_and_oa_wer():
    items = [
        (["a b", "c d"], ["a b", "c d"], 0.0),  # low: 0/4 (a ratio of 0 is in "low")
        (["a b c d", "e f"], ["e f g", "a x c"], 0.3),  # mid: one stream "e f g a x c" vs "e f a b c d": 3/6
        (["one two", "three four"], ["one", "two three four"], 0.7),  # high: 0/4, though the split is wrong
    ]
    score = score_corpus(items)
    assert score.utterances == 3
    assert score.wer == pytest.approx(100 * 3 / 14)
    assert score.subsets == pytest.approx({"low": 0.0, "mid": 50.0, "high": 0.0})
    assert score.oa_wer == pytest.approx(50.0 / 3)
    # cpWER also charges the misplaced speaker change: "one"/"two three four" cost 2.
    assert score.cpwer == pytest.approx(100 * (0 + 3 + 2) / 14)
    assert math.isnan(score_corpus([]).wer)
