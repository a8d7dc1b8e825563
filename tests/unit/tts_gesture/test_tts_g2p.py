"""Offline g2p: CMUdict English with stress, out-of-vocabulary fallbacks, pinyin Mandarin, clear errors."""

from __future__ import annotations

import pytest
from tts_gesture.text import SYMBOLS, G2PError, phonemes, text_to_sequence
from tts_gesture.text.english import word_phonemes
from tts_gesture.text.symbols import PAUSE


def test_english_dictionary_words_keep_stress_and_pauses() -> None:
    assert phonemes("Hello, world!", "en") == ["HH", "AH0", "L", "OW1", PAUSE, "W", "ER1", "L", "D", PAUSE]


def test_english_numbers_are_spelled_out() -> None:
    assert phonemes("42", "en") == phonemes("forty two", "en")
    assert phonemes("1,250", "en") == phonemes("one thousand two hundred fifty", "en")


def test_out_of_vocabulary_word_splits_into_dictionary_words() -> None:
    assert word_phonemes("orate") == word_phonemes("or") + word_phonemes("ate")


def test_unsplittable_word_is_read_letter_by_letter() -> None:
    assert word_phonemes("xqzw") == [
        "EH1",
        "K",
        "S",
        "K",
        "Y",
        "UW1",
        "Z",
        "IY1",
        "D",
        "AH1",
        "B",
        "AH0",
        "L",
        "Y",
        "UW0",
    ]


def test_accents_are_stripped() -> None:
    assert phonemes("café", "en") == phonemes("cafe", "en")


def test_unreadable_characters_are_named() -> None:
    with pytest.raises(G2PError) as error:
        phonemes("hi 😀 there ж", "en")
    assert error.value.characters == ["ж", "😀"]
    assert "😀" in str(error.value)


def test_mandarin_initials_and_toned_finals() -> None:
    assert phonemes("你好，绿。", "zh") == ["n", "i3", "h", "ao3", PAUSE, "l", "v4", PAUSE]
    assert phonemes("2", "zh") == phonemes("二", "zh")


def test_mandarin_rejects_latin_letters() -> None:
    with pytest.raises(G2PError) as error:
        phonemes("你好 abc", "zh")
    assert error.value.characters == ["a", "b", "c"]


@pytest.mark.parametrize("text", ["", "   ", "...!"])
def test_nothing_to_speak_is_an_error(text: str) -> None:
    with pytest.raises(G2PError, match="nothing to speak"):
        phonemes(text, "en")


def test_unknown_language_is_an_error() -> None:
    with pytest.raises(ValueError, match="no g2p for language 'fr'"):
        phonemes("bonjour", "fr")


def test_sequence_ids_index_the_symbol_table() -> None:
    for text, language in (("Hi.", "en"), ("你好", "zh")):
        ids = text_to_sequence(text, language)
        assert [SYMBOLS[i] for i in ids] == phonemes(text, language)
        assert 0 not in ids  # 0 is padding
