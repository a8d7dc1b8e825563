"""Speech input as upstream feeds it: decoded, mono, 16 kHz, then min-max scaled to [-1, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.media import load_audio


def load_speech(source: bytes | Path, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 [N] at sample_rate, min-max scaled as upstream's `audio_normalize` (MediaError if bad)."""
    wave, _ = load_audio(source, target_rate=sample_rate)
    if wave.size == 0:
        return wave
    low, high = float(wave.min()), float(wave.max())
    if high - low < 1e-12:  # digital silence: min-max scaling is undefined, keep it silent
        return np.zeros_like(wave)
    return (2.0 * (wave - low) / (high - low) - 1.0).astype(np.float32)
