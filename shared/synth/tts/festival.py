"""Festival voices (Debian `festival` plus festvox packages): phone and word times from the utterance."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

from shared import media
from shared.synth.tts.base import (
    Synthesis,
    SynthesisError,
    Timing,
    VoiceFamily,
    VoiceInfo,
    clip_timings,
    run_tool,
)

VOICE_ROOT = Path("/usr/share/festival/voices")

# (name, Debian package, language, gender, native rate, description)
_CATALOGUE: tuple[tuple[str, str, str, Literal["f", "m"], int, str], ...] = (
    ("kal_diphone", "festvox-kallpc16k", "en-us", "m", 16000, "CMU Kal diphone, LPC"),
    ("ked_diphone", "festvox-kdlpc16k", "en-us", "m", 16000, "CMU Ked diphone, LPC"),
    (
        "cmu_us_slt_arctic_hts",
        "festvox-us-slt-hts",
        "en-us",
        "f",
        32000,
        "CMU ARCTIC SLT, HTS",
    ),
    ("rab_diphone", "festvox-rablpc16k", "en-gb", "m", 16000, "CSTR Rab diphone (British English), LPC"),
)

# Prints "P <phone> <end>" per segment and "W <word> <start> <end>" per word after synthesis.
_SCRIPT = """(voice_{voice})
(set! utt (Utterance Text "{text}"))
(utt.synth utt)
(utt.save.wave utt "{wav}" 'riff)
(mapcar (lambda (s) (format t "P %s %f\\n" (item.name s) (item.feat s "end")))
        (utt.relation.items utt 'Segment))
(mapcar (lambda (w) (format t "W %s %f %f\\n" (item.name w) (item.feat w "word_start")
                            (item.feat w "word_end")))
        (utt.relation.items utt 'Word))
"""


class FestivalFamily(VoiceFamily):
    name = "festival"

    def unavailable_reason(self) -> str | None:
        if not shutil.which("festival"):
            return "festival is not installed (apt-get install festival festvox-kallpc16k)"
        return None if self.voices() else "no festival voice is installed (apt-get install festvox-kallpc16k)"

    def voices(self) -> list[VoiceInfo]:
        if not shutil.which("festival"):
            return []
        return [
            VoiceInfo(
                f"festival:{name}",
                self.name,
                name,
                lang,
                gender,
                rate,
                "engine",
                "radio",
                f"{desc} ({package})",
            )
            for name, package, lang, gender, rate, desc in _CATALOGUE
            if any(VOICE_ROOT.glob(f"*/{name}"))
        ]

    def synthesize(self, text: str, voice: VoiceInfo) -> Synthesis:
        # Scheme string literal: only backslash and double quote need escaping.
        literal = text.replace("\\", "\\\\").replace('"', '\\"')
        with tempfile.TemporaryDirectory(prefix="orate-festival-") as tmp:
            wav, script = Path(tmp) / "out.wav", Path(tmp) / "say.scm"
            script.write_text(_SCRIPT.format(voice=voice.name, text=literal, wav=wav), encoding="utf-8")
            lines = run_tool(["festival", "-b", str(script)]).splitlines()
            if not wav.exists():
                raise SynthesisError(f"festival wrote no audio for voice {voice.name}")
            waveform, rate = media.load_audio(wav)
        phones, words, start = [], [], 0.0
        for line in lines:
            fields = line.split()
            if len(fields) == 3 and fields[0] == "P":
                phones.append(Timing(fields[1], start, float(fields[2])))
                start = float(fields[2])
            elif len(fields) == 4 and fields[0] == "W":
                words.append(Timing(fields[1], float(fields[2]), float(fields[3])))
        duration = waveform.shape[0] / rate
        return Synthesis(waveform, rate, clip_timings(phones, duration), clip_timings(words, duration))
