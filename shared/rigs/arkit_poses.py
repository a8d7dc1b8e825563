"""Hand-set ARKit poses: the 15 visemes of Meta's Oculus Lipsync reference with a phone table (ARPAbet and
IPA), and EMFACS emotion prototypes (Ekman & Friesen) translated from action units to ARKit shapes."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

import numpy as np

from shared.rigs.arkit import ARKIT_INDEX, ARKIT_SHAPES


def pose(**weights: float) -> dict[str, float]:
    """ARKit weights; a name ending in '_' means both its Left and Right shapes."""
    out: dict[str, float] = {}
    for name, value in weights.items():
        names = [f"{name[:-1]}Left", f"{name[:-1]}Right"] if name.endswith("_") else [name]
        out.update(dict.fromkeys(names, value))
    return out


VISEME_POSES: dict[str, dict[str, float]] = {
    "sil": {},
    "PP": pose(jawOpen=0.05, mouthClose=0.05, mouthPress_=0.45, mouthRollLower=0.15, mouthRollUpper=0.1),
    "FF": pose(jawOpen=0.08, mouthRollLower=0.55, mouthUpperUp_=0.2),
    "TH": pose(jawOpen=0.15, tongueOut=0.35, mouthLowerDown_=0.1),
    "DD": pose(jawOpen=0.16, mouthStretch_=0.1, mouthUpperUp_=0.1),
    "kk": pose(jawOpen=0.2, mouthStretch_=0.15),
    "CH": pose(jawOpen=0.12, mouthFunnel=0.5, mouthPucker=0.25, mouthUpperUp_=0.15),
    "SS": pose(jawOpen=0.08, mouthStretch_=0.3, mouthSmile_=0.15),
    "nn": pose(jawOpen=0.14, mouthStretch_=0.05),
    "RR": pose(jawOpen=0.14, mouthPucker=0.35, mouthFunnel=0.2),
    "aa": pose(jawOpen=0.6, mouthLowerDown_=0.25, mouthUpperUp_=0.05),
    "E": pose(jawOpen=0.35, mouthStretch_=0.35, mouthSmile_=0.1, mouthLowerDown_=0.15),
    "ih": pose(jawOpen=0.22, mouthStretch_=0.3, mouthSmile_=0.2),
    "oh": pose(jawOpen=0.45, mouthFunnel=0.5, mouthPucker=0.2),
    "ou": pose(jawOpen=0.2, mouthPucker=0.7, mouthFunnel=0.35),
}
VOWEL_VISEMES = frozenset({"aa", "E", "ih", "oh", "ou"})
# Phone -> viseme(s), ARPAbet (flite, festival; stress digits dropped) and IPA (espeak-ng). Two visemes: a
# diphthong, split 55/45. "h" takes the next phone's shape (it is articulated with the following vowel).
PHONE_VISEMES: dict[str, tuple[str, ...]] = {
    **{p: ("sil",) for p in ("pau", "sil", "sp", "h#", "")},
    **{p: ("PP",) for p in ("p", "b", "m")},
    **{p: ("FF",) for p in ("f", "v")},
    **{p: ("TH",) for p in ("th", "dh", "θ", "ð")},
    **{p: ("DD",) for p in ("t", "d", "dx", "ɾ")},
    **{p: ("kk",) for p in ("k", "g", "ng", "ŋ", "ɡ", "x")},
    **{p: ("CH",) for p in ("ch", "jh", "sh", "zh", "ʃ", "ʒ", "tʃ", "dʒ")},
    **{p: ("SS",) for p in ("s", "z")},
    **{p: ("nn",) for p in ("n", "l", "el", "en", "ɫ")},
    **{p: ("RR",) for p in ("r", "er", "axr", "ɹ", "ɚ", "ɝ", "ɜ")},
    **{p: ("aa",) for p in ("aa", "ae", "ah", "ax", "a", "ɑ", "æ", "ʌ", "ə", "ɐ", "ɒ")},
    **{p: ("E",) for p in ("eh", "e", "ɛ")},
    **{p: ("ih",) for p in ("ih", "iy", "ix", "y", "i", "ɪ", "j")},
    **{p: ("oh",) for p in ("ao", "o", "ɔ")},
    **{p: ("ou",) for p in ("uw", "uh", "w", "u", "ʊ")},
    **{p: ("aa", "ih") for p in ("ay", "aɪ")},
    **{p: ("aa", "ou") for p in ("aw", "aʊ")},
    **{p: ("E", "ih") for p in ("ey", "eɪ")},
    **{p: ("oh", "ou") for p in ("ow", "oʊ", "əʊ")},
    **{p: ("oh", "ih") for p in ("oy", "ɔɪ")},
    **{p: () for p in ("hh", "h")},
}
UNKNOWN_VISEME = "nn"  # a slightly open, neutral shape for phones outside the table
# EMFACS emotion prototypes as ARKit weights at full intensity (AU1 browInnerUp, AU2 browOuterUp, AU4
# browDown, AU5 eyeWide, AU6 cheekSquint, AU7 eyeSquint, AU9 noseSneer, AU10 mouthUpperUp, AU12 mouthSmile,
# AU14 mouthDimple, AU15 mouthFrown, AU20 mouthStretch, AU23/24 mouthPress, AU26 jawOpen).
EMOTION_POSES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": pose(mouthSmile_=0.7, cheekSquint_=0.5, eyeSquint_=0.25),
    "sad": pose(browInnerUp=0.6, browDown_=0.25, mouthFrown_=0.5, mouthShrugLower=0.2),
    "surprised": pose(browInnerUp=0.6, browOuterUp_=0.7, eyeWide_=0.6, jawOpen=0.12),
    "fear": pose(browInnerUp=0.7, browOuterUp_=0.35, browDown_=0.2, eyeWide_=0.5, mouthStretch_=0.5),
    "disgusted": pose(noseSneer_=0.65, mouthUpperUp_=0.4, mouthFrown_=0.3, browDown_=0.3, cheekSquint_=0.2),
    "angry": pose(browDown_=0.7, eyeSquint_=0.35, eyeWide_=0.2, mouthPress_=0.45, noseSneer_=0.15),
    # Contempt is one-sided (unilateral AU12 + AU14).
    "contempt": pose(mouthSmileLeft=0.35, mouthDimpleLeft=0.4, mouthPressLeft=0.15),
}


def normalise_phone(label: str) -> str:
    """Lower case, no stress digits or IPA length/stress marks or diacritics."""
    label = unicodedata.normalize("NFD", label.strip().lower())
    return "".join(c for c in label if not (c.isdigit() or unicodedata.combining(c) or c in "ːˑˈˌ'"))


def phone_visemes(label: str) -> tuple[str, ...]:
    """The label's visemes; unlisted IPA clusters by their first symbols ('oː' -> 'o'), else neutral."""
    key = normalise_phone(label)
    for candidate in (key, key[:2], key[:1]):
        if candidate in PHONE_VISEMES:
            return PHONE_VISEMES[candidate]
    return (UNKNOWN_VISEME,)


def pose_vector(weights: Mapping[str, float]) -> np.ndarray:
    """{ARKit name: weight} -> [52] in ARKIT_SHAPES order, zero elsewhere."""
    out = np.zeros(len(ARKIT_SHAPES), dtype=np.float64)
    for name, value in weights.items():
        out[ARKIT_INDEX[name]] = value
    return out
