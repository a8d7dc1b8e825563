"""shared.render.video.read_video: what encode_mp4 writes reads back; undecodable input says why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.media import MediaError, encode_wav
from shared.render.video import encode_mp4, read_video

pytest.importorskip("av", reason="PyAV is not installed (pip install av)")

FPS, RATE = 24, 16000
# AAC codes whole frames of 1024 samples, so the decoded track may run up to one frame longer.
AAC_FRAME = 1024


def _frames(count: int = 16, height: int = 48, width: int = 64) -> list[np.ndarray]:
    # Flat colours that change from frame to frame survive H.264 nearly unchanged.
    return [np.full((height, width, 3), (i * 15, 100, 255 - i * 15), np.uint8) for i in range(count)]


def _tone(seconds: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * RATE)) / RATE)).astype(np.float32)


def test_round_trip_keeps_frames_size_fps_and_audio() -> None:
    frames, tone = _frames(), _tone(0.75)
    clip = read_video(encode_mp4(frames, FPS, (tone, RATE)))
    assert clip.frames.shape == (16, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == FPS
    assert np.abs(clip.frames.astype(int) - np.stack(frames)).mean() < 4
    assert clip.audio is not None
    waveform, rate = clip.audio
    assert rate == RATE and waveform.dtype == np.float32 and waveform.ndim == 1
    assert tone.shape[0] <= waveform.shape[0] <= tone.shape[0] + AAC_FRAME
    # Same tone, same level: RMS of a 0.5 sine is 0.354.
    assert abs(float(np.sqrt(np.mean(waveform**2))) - 0.354) < 0.03


def test_reads_from_a_path_and_without_audio(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(encode_mp4(_frames(count=5), 25))
    clip = read_video(path)
    assert clip.frames.shape == (5, 48, 64, 3) and clip.fps == 25 and clip.audio is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"this is not a video" * 50, "could not decode"),
        (encode_wav(_tone(0.1), RATE), "no video stream"),
    ],
)
def test_undecodable_input_is_a_media_error(data: bytes, why: str) -> None:
    with pytest.raises(MediaError, match=f"not a video file.*{why}"):
        read_video(data)


def test_missing_path_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.mp4")
