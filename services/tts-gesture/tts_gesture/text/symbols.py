"""The phoneme inventory: one embedding table for English (ARPAbet with stress) and Mandarin (pinyin).

The order is part of a checkpoint: never reorder, only append.
"""

from __future__ import annotations

PAD = "_"
PAUSE = "sp"  # punctuation and sentence-final pauses (FastSpeech2's short-pause symbol)

ARPABET_CONSONANTS: tuple[str, ...] = tuple("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split())
ARPABET_VOWELS: tuple[str, ...] = tuple("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())
# CMUdict marks every vowel with its lexical stress: 0 none, 1 primary, 2 secondary.
ARPABET: tuple[str, ...] = ARPABET_CONSONANTS + tuple(f"{v}{s}" for v in ARPABET_VOWELS for s in "012")

# pypinyin's strict initials and finals (Style.INITIALS / Style.FINALS_TONE3, strict=True; ü written v).
PINYIN_INITIALS: tuple[str, ...] = tuple("b p m f d t n l g k h j q x zh ch sh r z c s".split())
PINYIN_FINALS: tuple[str, ...] = tuple(
    """a ai an ang ao e ei en eng er i ia ian iang iao ie in ing iong iou o ong ou u ua uai uan uang uei uen
    ueng uo v van ve vn""".split()
)
TONES = "12345"  # 5 is the neutral tone
PINYIN: tuple[str, ...] = PINYIN_INITIALS + tuple(f"{f}{t}" for f in PINYIN_FINALS for t in TONES)

SYMBOLS: tuple[str, ...] = (PAD, PAUSE, *ARPABET, *PINYIN)
SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}
