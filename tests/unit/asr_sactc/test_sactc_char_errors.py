"""PI-CER, the finer measure the demo model card reports, and PI assignment of many speaker streams."""

import pytest
from asr_sactc.scoring import pi_char_errors, pi_word_errors, score_corpus


def test_char_errors_count_characters_and_word_boundaries() -> None:
    assert pi_char_errors(["AB CD"], ["AB CD"]) == (0, 5)
    assert pi_char_errors(["AB CD"], ["ABCD"]) == (1, 5)  # a lost word boundary
    assert pi_char_errors(["AB CD"], ["AX CD"]) == (1, 5)
    # Speaker streams are matched as for PI-WER: swapped streams cost nothing, a missing one its length.
    assert pi_char_errors(["AB", "CDE"], ["CDE", "AB"]) == (0, 5)
    assert pi_char_errors(["AB", "CDE"], ["CDE"]) == (2, 5)


def test_score_corpus_reports_cer() -> None:
    score = score_corpus([(["AB CD"], ["AB CX"], 0.0), (["EF", "GH"], ["EF GH"], 0.3)])
    # Merged streams: "EF_GH" against EF (3 insertions) and an empty stream against GH (2 deletions).
    assert score.cer == pytest.approx(100 * (1 + 5) / (5 + 4))


def test_many_hypothesis_streams_are_assigned_without_enumerating_permutations() -> None:
    # A looping decoder emits a dozen speaker changes; 14! permutations would never finish.
    refs, hyps = ["A B C", "D E"], ["X"] * 10 + ["D E", "", "A B C", "Y"]
    assert pi_word_errors(refs, hyps) == (11, 5)  # the eleven X and Y words are insertions
