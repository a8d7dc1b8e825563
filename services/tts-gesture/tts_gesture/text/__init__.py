"""Offline grapheme-to-phoneme conversion: English through CMUdict, Mandarin through pinyin."""

from __future__ import annotations

from collections.abc import Callable

from tts_gesture.text.english import english_phonemes
from tts_gesture.text.errors import G2PError
from tts_gesture.text.mandarin import mandarin_phonemes
from tts_gesture.text.symbols import PAUSE, SYMBOL_TO_ID, SYMBOLS

__all__ = ["G2P", "SYMBOLS", "G2PError", "phonemes", "text_to_sequence"]

G2P: dict[str, Callable[[str], list[str]]] = {"en": english_phonemes, "zh": mandarin_phonemes}


def phonemes(text: str, language: str) -> list[str]:
    """Text in a voice's language ("en", "zh") -> phoneme symbols. Raises G2PError or, for an unknown
    language, ValueError."""
    if language not in G2P:
        raise ValueError(f"no g2p for language {language!r}; known: {sorted(G2P)}")
    result = G2P[language](text)
    if not set(result) - {PAUSE}:
        raise G2PError("the text has nothing to speak (empty, or punctuation only)")
    return result


def text_to_sequence(text: str, language: str) -> list[int]:
    """Text -> phoneme ids into SYMBOLS."""
    return [SYMBOL_TO_ID[p] for p in phonemes(text, language)]
