"""Mandarin text -> pinyin initials and tone-numbered finals (pypinyin, strict, ü as v, neutral tone 5).

pypinyin reads polyphonic characters from its phrase dictionary, so the whole text is converted at once.
Arabic digits are read one by one (一二三); punctuation becomes a pause; Latin letters and anything
pypinyin has no reading for are an error naming them.
"""

from __future__ import annotations

import re

from pypinyin import Style, lazy_pinyin

from tts_gesture.text.errors import G2PError
from tts_gesture.text.symbols import PAUSE, PINYIN_FINALS, PINYIN_INITIALS

_DIGITS = str.maketrans("0123456789", "零一二三四五六七八九")
_PUNCTUATION = re.compile(r"[\s,.;:!?()\"'\u3000-\u303f\uff00-\uffef\u2014\u2026\u201c\u201d\u2018\u2019-]+")
_SYLLABLE_FINAL = re.compile(rf"^({'|'.join(sorted(PINYIN_FINALS, key=len, reverse=True))})[1-5]$")


def mandarin_phonemes(text: str) -> list[str]:
    """Text -> pinyin symbols, PAUSE at punctuation and at the end. Raises G2PError."""
    text = text.translate(_DIGITS)
    initials = lazy_pinyin(text, style=Style.INITIALS, strict=True)
    finals = lazy_pinyin(text, style=Style.FINALS_TONE3, strict=True, neutral_tone_with_five=True)
    phonemes: list[str] = []
    unread: set[str] = set()
    for initial, final in zip(initials, finals, strict=True):
        if _SYLLABLE_FINAL.match(final) or (not final and initial in PINYIN_INITIALS):
            phonemes.extend(p for p in (initial, final) if p)  # zero-initial syllables (an, er) have none
        elif _PUNCTUATION.fullmatch(final):
            if phonemes and phonemes[-1] != PAUSE:
                phonemes.append(PAUSE)
        else:
            unread.update(_PUNCTUATION.sub("", final))
    if unread:
        raise G2PError.unreadable(sorted(unread), "zh")
    if phonemes and phonemes[-1] != PAUSE:
        phonemes.append(PAUSE)
    return phonemes
