"""Media I/O: load, validate, resample and loudness-normalise audio; validate images; clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MediaError(ValueError):
    """Undecodable or unusable media, with a reason a user can act on."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    mode: str


def probe_audio(data: bytes) -> AudioInfo:
    """Header facts of encoded audio (WAV, FLAC, OGG, SPH...); MediaError if it cannot be decoded."""


def validate_audio(
    data: bytes, *, min_seconds: float = 0.0, max_seconds: float | None = None, allow_silence: bool = True
) -> AudioInfo:
    """probe_audio plus limits: too short, too long, or (unless allowed) digital silence -> MediaError."""


def load_audio(source: bytes | Path, target_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Decode to float32 in [-1, 1] (mono: channel mean), resampled to target_rate when given."""


def resample(wave: np.ndarray, rate: int, target_rate: int) -> np.ndarray: ...


def encode_wav(wave: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes."""


def validate_image(data: bytes, *, max_pixels: int = 4096 * 4096) -> ImageInfo:
    """PNG/JPEG/WebP header check and full decode; MediaError with the reason otherwise."""
