"""espeak-ng voices: IPA phone and word times from libespeak-ng's synthesis events, one child process each."""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Literal

from shared import media
from shared.synth.tts.base import PAUSE, Synthesis, Timing, VoiceFamily, VoiceInfo, clip_timings, run_tool

WORKER = Path(__file__).with_name("espeak_worker.py")
_EVENT_WORD, _EVENT_PHONEME = 1, 7

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
    """A word spans its spoken phones: each phone event carries the (1-based) text position of its word.

    Some languages get one word event for a group (French "tout le monde"), so the label is all the text up
    to the next word event, trimmed of spaces and punctuation.
    """
    out = []
    for i, (pos, _) in enumerate(words):
        next_pos = words[i + 1][0] if i + 1 < len(words) else len(text) + 1
        mine = [
            p
            for p, (_, at, label) in zip(phones, raw, strict=True)
            if pos <= at < next_pos and label != PAUSE
        ]
        if mine:
            label = re.sub(r"^\W+|\W+$", "", text[pos - 1 : next_pos - 1])
            out.append(Timing(label, mine[0].start, mine[-1].end))
    return out
