"""shared.media: decoding, limits with user-facing reasons, resampling, loudness, WAV and image checks."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from shared import media
from shared.media import MediaError


def _tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.shape[0])))
    return float(np.argmax(spectrum) * rate / wave.shape[0])


def _encoded(wave: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _image(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "fmt,subtype", [("WAV", "PCM_16"), ("FLAC", None), ("OGG", "VORBIS"), ("NIST", "ULAW")]
)
def test_probe_and_load_common_formats(fmt: str, subtype: str | None) -> None:
    data = _encoded(_tone(1.0, 8000), 8000, fmt, subtype)
    info = media.probe_audio(data)
    assert (info.sample_rate, info.channels, info.format) == (8000, 1, fmt)
    wave, rate = media.load_audio(data, target_rate=16000)
    assert rate == 16000 and wave.dtype == np.float32 and abs(wave.shape[0] - 16000) <= 1
    assert _peak_hz(wave, rate) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("data", [b"", b"hello, this is not audio at all", b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_bad_bytes_say_not_an_audio_file(data: bytes) -> None:
    with pytest.raises(MediaError, match=r"^not an audio file \(could not decode: .+\)$"):
        media.validate_audio(data)


def test_duration_limits_have_actionable_messages() -> None:
    short = media.encode_wav(_tone(0.2, 16000), 16000)
    with pytest.raises(MediaError, match=r"^audio is 0\.2 s; at least 0\.5 s is required$"):
        media.validate_audio(short, min_seconds=0.5)
    # 900 s at 1 kHz keeps the test file small; the header check rejects it before decoding.
    long = media.encode_wav(np.full(900_000, 0.1, np.float32), 1000)
    with pytest.raises(MediaError, match=r"^audio is 900 s; at most 600 s is allowed$"):
        media.validate_audio(long, max_seconds=600)
    assert media.validate_audio(short, min_seconds=0.1, max_seconds=1).duration_s == pytest.approx(0.2)


def test_limit_message_never_reads_equal_to_the_limit() -> None:
    almost = media.encode_wav(_tone(0.499, 16000), 16000)
    with pytest.raises(MediaError, match=r"^audio is 0\.499 s; at least 0\.5 s is required$"):
        media.validate_audio(almost, min_seconds=0.5)


def test_silence_is_refused_only_when_asked() -> None:
    silent = media.encode_wav(np.zeros(32000, np.float32), 16000)
    assert media.validate_audio(silent).frames == 32000
    with pytest.raises(MediaError, match=r"^audio is silent"):
        media.validate_audio(silent, allow_silence=False)
    media.validate_audio(media.encode_wav(_tone(1.0, 16000, amplitude=0.01), 16000), allow_silence=False)


def test_header_only_wav_is_empty() -> None:
    with pytest.raises(MediaError, match="audio is empty"):
        media.validate_audio(media.encode_wav(np.zeros(100), 16000)[:44])


def test_load_stereo_mono_mix_and_channels() -> None:
    stereo = np.stack([_tone(0.5, 16000), np.zeros(8000, np.float32)], axis=1)
    data = media.encode_wav(stereo, 16000)
    both, _ = media.load_audio(data, mono=False)
    mono, _ = media.load_audio(data)
    assert both.shape == (8000, 2) and mono.shape == (8000,)
    np.testing.assert_allclose(mono, both.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("rate,target", [(48000, 16000), (22050, 16000), (8000, 16000), (16000, 44100)])
@pytest.mark.parametrize("backend", ["soxr", "scipy"])
def test_resample_length_and_pitch(
    rate: int, target: int, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "scipy":
        monkeypatch.setitem(sys.modules, "soxr", None)  # makes `import soxr` raise ImportError
    wave = _tone(1.3, rate, freq=1000)
    out = media.resample(wave, rate, target)
    assert out.dtype == np.float32 and out.shape == (round(wave.shape[0] * target / rate),)
    assert _peak_hz(out, target) == pytest.approx(1000, abs=2)
    stereo = media.resample(np.stack([wave, wave], axis=1), rate, target)
    assert stereo.shape == (out.shape[0], 2)


def test_k_weighting_matches_the_bs1770_table_at_48k() -> None:
    (shelf_b, shelf_a), (pass_b, pass_a) = media._k_weighting(48000)
    np.testing.assert_allclose(shelf_b, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(shelf_a, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(pass_b, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(pass_a, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)


def test_loudness_of_reference_tone_and_normalisation() -> None:
    # BS.1770: a 0 dB FS 1 kHz sine in one channel reads -3.01 LKFS, so -20 dBFS reads -23.0.
    tone = _tone(5.0, 48000, freq=1000, amplitude=0.1)
    assert media.loudness_lufs(tone, 48000) == pytest.approx(-23.0, abs=0.05)
    quiet = _tone(3.0, 16000, freq=500, amplitude=0.003)
    assert media.loudness_lufs(media.normalize_loudness(quiet, 16000, -20.0), 16000) == pytest.approx(
        -20.0, abs=0.01
    )
    loud = media.normalize_loudness(quiet, 16000, 0.0, peak_limit=0.5)
    assert float(np.max(np.abs(loud))) == pytest.approx(0.5, rel=1e-4)
    with pytest.raises(MediaError, match="silent"):
        media.normalize_loudness(np.zeros(16000, np.float32), 16000)


def test_encode_wav_round_trips_and_clips() -> None:
    wave = np.array([0.0, 0.5, -0.5, 1.5, -1.5], np.float32)
    decoded, rate = media.load_audio(media.encode_wav(wave, 8000))
    assert rate == 8000
    np.testing.assert_allclose(decoded, [0.0, 0.5, -0.5, 32767 / 32768, -32767 / 32768], atol=1 / 32768)
    assert media.encode_wav(wave, 8000) == media.encode_wav(wave.copy(), 8000)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_supported_images_pass(fmt: str) -> None:
    info = media.validate_image(_image(fmt))
    assert (info.width, info.height, info.format) == (64, 48, fmt)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", r"^not an image \(could not decode: the upload is empty\)$"),
        (
            b"GIF89a not really",
            r"^not an image \(could not decode: unrecognised format\); use PNG, JPEG or WebP$",
        ),
        (_image("GIF"), r"^image format GIF is not supported; use PNG, JPEG or WebP$"),
        (_image("PNG")[:-30], r"^image is truncated or corrupt \(could not decode: .+\)$"),
        (_image("JPEG")[:300], r"^image is truncated or corrupt \(could not decode: .+\)$"),
    ],
)
def test_bad_images_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        media.validate_image(data)


def test_image_pixel_limit() -> None:
    with pytest.raises(
        MediaError,
        match=r"^image is 64x48 \(3,072 pixels\); at most 1,000 pixels are allowed, so scale it down$",
    ):
        media.validate_image(_image("PNG"), max_pixels=1000)
