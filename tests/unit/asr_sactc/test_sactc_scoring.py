"""PI-WER, cpWER (meeteval) and overlap-subset scoring on hand-made multi-talker cases."""

import math

import meeteval
import pytest
from asr_sactc.scoring import (
    cp_word_errors,
    overlap_ratio,
    overlap_subset,
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
    assert [overlap_subset(r) for r in (0.0, 0.1, 0.2, 0.35, 0.5, 0.9)] == [
        None,
        "low",
        "low",
        "mid",
        "mid",
        "high",
    ]


def test_score_corpus_subsets_and_oa_wer():
    items = [
        (["a b", "c d"], ["a b", "c d"], 0.1),  # low: 0/4
        (["a b c d", "e f"], ["e f g", "a x c"], 0.3),  # mid: 3/6
        (["one two", "three four"], ["one", "three four"], 0.7),  # high: 1/4
    ]
    score = score_corpus(items)
    assert score.utterances == 3
    assert score.wer == pytest.approx(100 * 4 / 14)
    assert score.cpwer == pytest.approx(score.wer)
    assert score.subsets == pytest.approx({"low": 0.0, "mid": 50.0, "high": 25.0})
    assert score.oa_wer == pytest.approx(25.0)
    assert math.isnan(score_corpus([]).wer)
