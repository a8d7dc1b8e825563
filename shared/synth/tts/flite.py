"""flite voices (Debian package `flite`): phone end times from the engine, word times aligned onto them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

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
    speech_span,
)

# (name, language, gender, native rate, description); awb_time is a limited-domain (clock times) voice.
_CATALOGUE: tuple[tuple[str, str, Literal["f", "m"], int, str], ...] = (
    ("kal", "en-us", "m", 8000, "CMU Kal diphone, 8 kHz"),
    ("kal16", "en-us", "m", 16000, "CMU Kal diphone, 16 kHz"),
    ("awb", "en-gb-scotland", "m", 16000, "CMU ARCTIC AWB (Scottish English), clustergen"),
    ("rms", "en-us", "m", 16000, "CMU ARCTIC RMS, clustergen"),
    ("slt", "en-us", "f", 16000, "CMU ARCTIC SLT, clustergen"),
)


class FliteFamily(VoiceFamily):
    name = "flite"

    def unavailable_reason(self) -> str | None:
        return None if shutil.which("flite") else "flite is not installed (apt-get install flite)"

    def voices(self) -> list[VoiceInfo]:
        if self.unavailable_reason():
            return []
        return [
            VoiceInfo(f"flite:{name}", self.name, name, lang, gender, rate, "engine", "cmu", desc)
            for name, lang, gender, rate, desc in _CATALOGUE
        ]

    def synthesize(self, text: str, voice: VoiceInfo) -> Synthesis:
        with tempfile.TemporaryDirectory(prefix="orate-flite-") as tmp:
            out = Path(tmp) / "out.wav"
            ends = run_tool(["flite", "-voice", voice.name, "-psdur", "-t", text, "-o", str(out)]).split()
            waveform, rate = media.load_audio(out)
        phones, start = [], 0.0
        for token in ends:
            label, _, end = token.rpartition(":")
            phones.append(Timing(label, start, float(end)))
            start = float(end)
        phones = clip_timings(phones, waveform.shape[0] / rate)
        return Synthesis(waveform, rate, phones, self._words(text, voice.name, phones))

    def _words(self, text: str, voice: str, phones: list[Timing]) -> list[Timing]:
        """Align flite's normalised words onto its phones.

        flite prints words and phones but not which phones belong to which word, so each word is spoken
        once more in isolation to count its phones. Post-lexical rules can change a count in context;
        then the words are spread over the speech instead.
        """
        words = run_tool(["flite", "-voice", voice, "-pw", "-t", text, "-o", "none"]).split()
        if not words:
            return []
        isolated = run_tool(["flite", "-voice", voice, "-ps", "-t", ". ".join(words) + ".", "-o", "none"])
        counts = [len(group.split()) for group in f" {isolated} ".split(f" {PAUSE} ") if group.strip()]
        spoken = [p for p in phones if p.label != PAUSE]
        if len(counts) != len(words) or sum(counts) != len(spoken):
            span = speech_span(phones)
            return estimate_words(words, *span) if span else []
        out, i = [], 0
        for word, count in zip(words, counts, strict=True):
            out.append(Timing(word, spoken[i].start, spoken[i + count - 1].end))
            i += count
        return out
