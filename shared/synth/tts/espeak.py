"""espeak-ng voices: IPA phone and word times from libespeak-ng's synthesis events, one child process each."""

from __future__ import annotations

import bisect
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from shared import media
from shared.synth.tts.base import (
    PAUSE,
    Synthesis,
    Timing,
    VoiceFamily,
    VoiceInfo,
    clip_timings,
    estimate_words,
    run_tool,
)

WORKER = Path(__file__).with_name("espeak_worker.py")
_EVENT_WORD, _EVENT_PHONEME = 1, 7
# A word of the text: letters and digits, with inner apostrophes ("grandfather's").
_WORD = re.compile(r"\w+(?:['’]\w+)*")

# English voices that sound distinct from one another; any other installed "language[+variant]" resolves too.
_CATALOGUE: tuple[str, ...] = (
    "en-us",
    "en-us+f3",
    "en-us+m3",
    "en-us+f1",
    "en-us+m7",
    "en-us+f4",
    "en-gb",
    "en-gb+f3",
    "en-gb+m3",
    "en-gb-scotland",
)


class EspeakFamily(VoiceFamily):
    name = "espeak"

    def __init__(self) -> None:
        # language -> (voice file, gender), read once from `espeak-ng --voices`.
        self._languages: dict[str, tuple[str, Literal["f", "m"]]] | None = None
        self._data_dir: Path | None = None

    def unavailable_reason(self) -> str | None:
        return None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)"

    def voices(self) -> list[VoiceInfo]:
        if self.unavailable_reason():
            return []
        return [v for v in (self.resolve(name) for name in _CATALOGUE) if v is not None]

    def resolve(self, name: str) -> VoiceInfo | None:
        if self.unavailable_reason():
            return None
        language, _, variant = name.partition("+")
        found = self._installed().get(language)
        if found is None or (variant and not self._variant_file(variant).is_file()):
            return None
        gender = self._variant_gender(variant) if variant else found[1]
        desc = f"eSpeak NG formant synthesis, voice file {found[0]}" + (
            f", variant {variant}" if variant else ""
        )
        return VoiceInfo(f"espeak:{name}", self.name, name, language, gender, 22050, "engine", "ipa", desc)

    def synthesize(self, text: str, voice: VoiceInfo) -> Synthesis:
        language, _, variant = voice.name.partition("+")
        spec = self._installed()[language][0] + (f"+{variant}" if variant else "")
        with tempfile.TemporaryDirectory(prefix="orate-espeak-") as tmp:
            wav = Path(tmp) / "out.wav"
            # -I: isolated, so the child starts fast and ignores the caller's environment.
            report = json.loads(run_tool([sys.executable, "-I", str(WORKER), spec, str(wav)], stdin=text))
            waveform, rate = media.load_audio(wav)
        duration = waveform.shape[0] / rate
        events = report["events"]
        # "(en)"-style events mark a switch of language, not a sound.
        raw = [
            (sample / rate, pos, label or PAUSE)
            for kind, sample, pos, _, label in events
            if kind == _EVENT_PHONEME and not (label.startswith("(") and label.endswith(")"))
        ]
        phones = [
            Timing(label, start, raw[i + 1][0] if i + 1 < len(raw) else duration)
            for i, (start, _, label) in enumerate(raw)
        ]
        words = [(pos, length) for kind, _, pos, length, _ in events if kind == _EVENT_WORD]
        return Synthesis(
            waveform, rate, _phones(phones), clip_timings(_words(text, words, raw, phones), duration)
        )

    def _installed(self) -> dict[str, tuple[str, Literal["f", "m"]]]:
        if self._languages is None:
            languages: dict[str, tuple[str, Literal["f", "m"]]] = {}
            # Columns: Pty Language Age/Gender VoiceName File [Other languages]; mbrola voices ("mb/")
            # are listed even when their data is missing, so they are left out.
            for line in run_tool(["espeak-ng", "--voices"]).splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 5 and fields[1] != "variant" and not fields[4].startswith("mb/"):
                    languages.setdefault(fields[1], (fields[4], "f" if fields[2].endswith("F") else "m"))
            self._languages = languages
        return self._languages

    def _variant_file(self, variant: str) -> Path:
        if self._data_dir is None:
            # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/x86_64-linux-gnu/espeak-ng-data"
            self._data_dir = Path(run_tool(["espeak-ng", "--version"]).split("Data at:")[-1].strip())
        return self._data_dir / "voices" / "!v" / variant

    def _variant_gender(self, variant: str) -> Literal["f", "m"]:
        for line in self._variant_file(variant).read_text(encoding="utf-8", errors="ignore").splitlines():
            if line.split()[:2] == ["gender", "female"]:
                return "f"
        return "m"


def _phones(phones: list[Timing]) -> list[Timing]:
    """Lead with a pause from 0 and merge back-to-back pause events, matching flite and festival."""
    out = [Timing(PAUSE, 0.0, phones[0].start)] if phones and phones[0].start > 0 else []
    for p in phones:
        if out and p.label == PAUSE and out[-1].label == PAUSE:
            out[-1] = Timing(PAUSE, out[-1].start, p.end)
        else:
            out.append(p)
    return out


def _words(
    text: str, words: list[tuple[int, int]], raw: list[tuple[float, int, str]], phones: list[Timing]
) -> list[Timing]:
    """One timing per word of the text, made of the spoken phones espeak-ng attributes to it.

    espeak-ng sends one word event per unit it speaks, and some units are groups of words ("out of",
    "in the", French "tout le monde"). Each phone event carries the (1-based) text position of its unit, so
    a unit owns the phones whose position lies between its word event and the next one, and the text words
    starting there. A unit of several words shares its phones out in proportion to the words' lengths, cut
    at phone boundaries: the engine does not say where inside a group one word ends.
    """
    tokens = [(m.start() + 1, m.group()) for m in _WORD.finditer(text)]
    if not tokens:
        return []
    # A unit starts at its word event; text before the first event belongs to the first unit.
    starts = sorted({pos for pos, _ in words} | {tokens[0][0]})
    units: list[tuple[list[str], list[Timing]]] = [([], []) for _ in starts]
    for pos, word in tokens:
        units[bisect.bisect_right(starts, pos) - 1][0].append(word)
    for phone, (_, pos, label) in zip(phones, raw, strict=True):
        if label != PAUSE:
            units[max(bisect.bisect_right(starts, pos) - 1, 0)][1].append(phone)
    # A unit without a text word (a symbol such as "&" read aloud) belongs with the word before it.
    merged: list[tuple[list[str], list[Timing]]] = []
    for unit_words, unit_phones in units:
        if unit_words or not merged:
            merged.append((unit_words, unit_phones))
        else:
            merged[-1][1].extend(unit_phones)
    if not merged[0][0] and len(merged) > 1:
        merged[1] = (merged[1][0], merged[0][1] + merged[1][1])
    out: list[Timing] = []
    for unit_words, unit_phones in merged:
        if unit_words:
            out += _share(unit_words, unit_phones, out[-1].end if out else 0.0)
    return out


def _share(words: list[str], phones: list[Timing], after: float) -> list[Timing]:
    """Split a unit's phones among its words by length, at least one phone each where there are enough."""
    if not phones:
        # espeak-ng spoke nothing for these words: an empty interval where they would have been.
        return [Timing(w, after, after) for w in words]
    if len(phones) < len(words):
        return estimate_words(words, phones[0].start, phones[-1].end)
    share = np.cumsum([len(w) for w in words]) / sum(len(w) for w in words)
    cuts = [0]
    for i, fraction in enumerate(share[:-1], start=1):
        cuts.append(min(max(round(len(phones) * fraction), cuts[-1] + 1), len(phones) - (len(words) - i)))
    cuts.append(len(phones))
    spans = zip(words, cuts[:-1], cuts[1:], strict=True)
    return [Timing(w, phones[a].start, phones[b - 1].end) for w, a, b in spans]
