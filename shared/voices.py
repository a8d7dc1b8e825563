"""One interface over the offline voices (flite, festival, espeak-ng, optional ttskit): list, resolve, speak.

Voice ids are "family:name", e.g. "flite:rms", "festival:kal_diphone", "espeak:en-us+f3". Every
synthesis comes with phone and word timings in seconds; VoiceInfo.timings says whether they come
from the engine or are estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import media
from shared.synth.tts.base import (
    Synthesis,
    SynthesisError,
    Timing,
    UnknownVoice,
    VoiceFamily,
    VoiceInfo,
    VoiceUnavailable,
    clip_timings,
)
from shared.synth.tts.espeak import EspeakFamily
from shared.synth.tts.festival import FestivalFamily
from shared.synth.tts.flite import FliteFamily
from shared.synth.tts.ttskit import TtskitFamily

__all__ = [
    "FamilyStatus",
    "Synthesis",
    "SynthesisError",
    "Timing",
    "UnknownVoice",
    "VoiceInfo",
    "VoiceUnavailable",
    "available_voices",
    "get_voice",
    "synthesize",
    "voice_families",
]

# Registry: family name -> engine. Order is the order of available_voices().
FAMILIES: dict[str, VoiceFamily] = {
    f.name: f for f in (FliteFamily(), FestivalFamily(), EspeakFamily(), TtskitFamily())
}


@dataclass(frozen=True)
class FamilyStatus:
    name: str
    available: bool
    reason: str | None
    voices: int


def voice_families() -> dict[str, FamilyStatus]:
    """Every known family, whether it works on this machine, and why not."""
    out = {}
    for name, family in FAMILIES.items():
        reason = family.unavailable_reason()
        out[name] = FamilyStatus(name, reason is None, reason, 0 if reason else len(family.voices()))
    return out


def available_voices() -> dict[str, VoiceInfo]:
    """The catalogue voices whose engines are installed here, by id."""
    return {v.id: v for family in FAMILIES.values() for v in family.voices()}


def get_voice(voice_id: str) -> VoiceInfo:
    """The voice with this id; UnknownVoice (or its subclass VoiceUnavailable) otherwise.

    Besides the catalogue, espeak resolves any installed "language[+variant]", e.g. "espeak:fr-fr+f2".
    """
    family_name, sep, name = voice_id.partition(":")
    family = FAMILIES.get(family_name) if sep else None
    if family is not None:
        reason = family.unavailable_reason()
        if reason:
            raise VoiceUnavailable(f"voice {voice_id!r} is unavailable here: {reason}")
        voice = family.resolve(name)
        if voice is not None:
            return voice
    some = ", ".join(list(available_voices())[:6]) or "none (install flite, festival or espeak-ng)"
    raise UnknownVoice(f"unknown voice {voice_id!r}; valid ids look like 'family:name', for example {some}")


def synthesize(text: str, voice: str, *, sample_rate: int = 16000) -> Synthesis:
    """Speak text with a voice id, resampled to sample_rate (float32 mono); timings are in seconds."""
    if not text.strip():
        raise ValueError("text is empty")
    info = get_voice(voice)
    result = FAMILIES[info.family].synthesize(text, info)
    if result.waveform.size == 0:
        raise SynthesisError(f"{voice} produced no audio for {text[:40]!r}")
    if result.sample_rate != sample_rate:
        waveform = media.resample(result.waveform, result.sample_rate, sample_rate)
        # Resampling rounds the length to whole samples; keep every timing inside the new duration.
        duration = waveform.shape[0] / sample_rate
        result = Synthesis(
            waveform, sample_rate, clip_timings(result.phones, duration), clip_timings(result.words, duration)
        )
    return result
