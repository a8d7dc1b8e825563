"""Types shared by the voice families: timings, voice metadata, a synthesis result, the family interface."""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

PAUSE = "pau"


@dataclass(frozen=True)
class Timing:
    """A labelled span of a synthesis, in seconds from the start of its waveform."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    family: str
    name: str
    language: str
    gender: Literal["f", "m", "unknown"]
    native_rate: int
    # "engine": phone and word times come from the synthesiser; "estimated": words spread over the speech.
    timings: Literal["engine", "estimated"]
    phoneset: str = ""
    description: str = ""


@dataclass
class Synthesis:
    """waveform: (samples,) float32 in [-1, 1] at sample_rate; phones use PAUSE for silences."""

    waveform: np.ndarray
    sample_rate: int
    phones: list[Timing] = field(default_factory=list)
    words: list[Timing] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.waveform.shape[0] / self.sample_rate


class UnknownVoice(KeyError):
    """No voice with this id on this machine; the message lists a few valid ids."""

    def __str__(self) -> str:
        # KeyError quotes its argument; this message is meant to be read as is.
        return str(self.args[0]) if self.args else "unknown voice"


class VoiceUnavailable(UnknownVoice):
    """The voice family exists but is not installed here; the message says what to install."""


class SynthesisError(RuntimeError):
    """The engine failed on input it should have accepted."""


class VoiceFamily(ABC):
    """One engine (flite, festival, ...): which voices it has here and how it speaks."""

    name: str

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when usable, else what is missing (an install hint)."""

    @abstractmethod
    def voices(self) -> list[VoiceInfo]:
        """The catalogue voices of this family installed here (empty when unavailable)."""

    def resolve(self, name: str) -> VoiceInfo | None:
        """The voice called name (the part after 'family:'), or None."""
        return next((v for v in self.voices() if v.name == name), None)

    @abstractmethod
    def synthesize(self, text: str, voice: VoiceInfo) -> Synthesis:
        """Speak text at the voice's native rate."""


def run_tool(args: list[str], stdin: str | None = None, timeout_s: float = 120.0) -> str:
    """Run an engine's command line; SynthesisError with its stderr when it fails."""
    try:
        done = subprocess.run(
            args,
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SynthesisError(f"{args[0]} failed: {exc}") from exc
    if done.returncode != 0:
        raise SynthesisError(f"{args[0]} exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def clip_timings(timings: list[Timing], duration_s: float) -> list[Timing]:
    """Clamp to [0, duration] and make starts non-decreasing: engines round their last end past the audio."""
    out: list[Timing] = []
    floor = 0.0
    for t in timings:
        start = min(max(t.start, floor), duration_s)
        end = min(max(t.end, start), duration_s)
        out.append(Timing(t.label, start, end))
        floor = start
    return out


def estimate_words(words: list[str], start: float, end: float) -> list[Timing]:
    """Spread words over [start, end] in proportion to their length (plus one for the gap after each)."""
    weights = np.array([len(w) + 1 for w in words], dtype=np.float64)
    if weights.size == 0:
        return []
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [Timing(w, float(a), float(b)) for w, a, b in zip(words, edges[:-1], edges[1:], strict=True)]


def speech_span(phones: list[Timing]) -> tuple[float, float] | None:
    """From the first non-pause phone's start to the last one's end, or None when all is pause."""
    spoken = [p for p in phones if p.label != PAUSE]
    return (spoken[0].start, spoken[-1].end) if spoken else None
