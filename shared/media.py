"""Media I/O: load, validate, resample and loudness-normalise audio; validate images; clear errors."""

from __future__ import annotations

import io
import math
import wave as wavfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A peak below this (about 3 LSB of 16-bit audio) is digital silence, not a quiet recording.
SILENCE_PEAK_DBFS = -80.0
_SILENCE_PEAK = 10 ** (SILENCE_PEAK_DBFS / 20)
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")


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
    import soundfile as sf

    if not data:
        raise MediaError("not an audio file (could not decode: the upload is empty)")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise MediaError(f"not an audio file (could not decode: {_reason(exc)})") from exc
    if info.samplerate <= 0 or info.channels <= 0:
        raise MediaError("not an audio file (could not decode: header has no sample rate or channels)")
    return AudioInfo(
        sample_rate=info.samplerate, channels=info.channels, frames=info.frames, format=info.format
    )


def validate_audio(
    data: bytes, *, min_seconds: float = 0.0, max_seconds: float | None = None, allow_silence: bool = True
) -> AudioInfo:
    """probe_audio plus limits: too short, too long, or (unless allowed) digital silence -> MediaError.

    The whole file is decoded (in blocks, to bound memory), so a truncated or corrupt body is caught and
    the duration is what actually decodes.
    """
    info = probe_audio(data)
    # Reject from the header first so an hour-long upload is not decoded just to be refused.
    if max_seconds is not None and info.duration_s > max_seconds:
        raise MediaError(_duration_message(info.duration_s, max_seconds, "at most", "allowed"))
    frames, peak = _scan(data)
    info = AudioInfo(sample_rate=info.sample_rate, channels=info.channels, frames=frames, format=info.format)
    if info.frames == 0:
        raise MediaError("audio is empty (the file holds no samples)")
    if info.duration_s < min_seconds:
        raise MediaError(_duration_message(info.duration_s, min_seconds, "at least", "required"))
    if max_seconds is not None and info.duration_s > max_seconds:
        raise MediaError(_duration_message(info.duration_s, max_seconds, "at most", "allowed"))
    if not allow_silence and peak < _SILENCE_PEAK:
        raise MediaError(
            f"audio is silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS); record or upload speech"
        )
    return info


def load_audio(
    source: bytes | Path, target_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Decode to float32 in [-1, 1] (mono: channel mean), resampled to target_rate when given.

    Returns (wave, rate): wave is (frames,) when mono, else (frames, channels).
    """
    data = Path(source).read_bytes() if isinstance(source, str | Path) else source
    if not data:
        raise MediaError("not an audio file (could not decode: the upload is empty)")
    samples, rate = _decode(data)
    wave = samples.mean(axis=1, dtype=np.float32) if mono else samples
    if target_rate is not None and target_rate != rate:
        wave, rate = resample(wave, rate, target_rate), target_rate
    return wave, rate


def resample(wave: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Resample (frames,) or (frames, channels) float audio; output has round(frames * target / rate) frames.

    soxr (high quality) when installed, else scipy's polyphase filter; the length is fixed either way so
    callers can rely on it.
    """
    if rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {rate} -> {target_rate}")
    wave = np.asarray(wave, dtype=np.float32)
    if rate == target_rate:
        return wave
    length = round(wave.shape[0] * target_rate / rate)
    try:
        import soxr

        out = soxr.resample(wave, rate, target_rate, quality="HQ")
    except ImportError:
        from scipy.signal import resample_poly

        g = math.gcd(rate, target_rate)
        out = resample_poly(wave, target_rate // g, rate // g, axis=0)
    out = np.asarray(out, dtype=np.float32)
    if out.shape[0] >= length:
        return np.ascontiguousarray(out[:length])
    pad = [(0, length - out.shape[0])] + [(0, 0)] * (out.ndim - 1)
    return np.pad(out, pad)


def is_silent(wave: np.ndarray) -> bool:
    """True when the peak is below SILENCE_PEAK_DBFS (digital silence or a muted input)."""
    return wave.size == 0 or float(np.max(np.abs(wave))) < _SILENCE_PEAK


def loudness_lufs(wave: np.ndarray, rate: int) -> float:
    """Integrated loudness per ITU-R BS.1770-4: K-weighting, 400 ms blocks, -70 LUFS and -10 LU gates.

    All channels get weight 1 (no surround weights); audio shorter than one block is one block.
    Returns -inf for silence.
    """
    from scipy.signal import lfilter

    x = np.asarray(wave, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    for b, a in _k_weighting(rate):
        x = lfilter(b, a, x, axis=0)
    block, step = round(0.4 * rate), round(0.1 * rate)
    if x.shape[0] <= block:
        power = np.mean(x**2, axis=0, keepdims=True)
    else:
        starts = np.arange(0, x.shape[0] - block + 1, step)
        cumulative = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x**2, axis=0)])
        power = (cumulative[starts + block] - cumulative[starts]) / block
    block_power = power.sum(axis=1)
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(block_power)
    gated = block_power[block_lufs > -70.0]
    if gated.size == 0:
        return -math.inf
    relative_gate = -0.691 + 10 * math.log10(gated.mean()) - 10.0
    gated = block_power[(block_lufs > -70.0) & (block_lufs > relative_gate)]
    return -0.691 + 10 * math.log10(gated.mean())


def normalize_loudness(
    wave: np.ndarray, rate: int, target_lufs: float = -23.0, peak_limit: float = 0.99
) -> np.ndarray:
    """Scale to target_lufs (BS.1770 integrated loudness), then down to peak_limit if that would clip.

    The peak guard wins over the target, so a very dynamic input can come out quieter than asked.
    """
    loudness = loudness_lufs(wave, rate)
    if not math.isfinite(loudness):
        raise MediaError("audio is silent; there is no loudness to normalise")
    out = np.asarray(wave, dtype=np.float32) * np.float32(10 ** ((target_lufs - loudness) / 20))
    peak = float(np.max(np.abs(out)))
    if peak > peak_limit:
        out *= np.float32(peak_limit / peak)
    return out


def encode_wav(wave: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes."""
    x = np.asarray(wave, dtype=np.float32)
    channels = 1 if x.ndim == 1 else x.shape[1]
    # Scale by 32767 and clip, as libsndfile does, but here so the bytes do not depend on its version.
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wavfile.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def validate_image(data: bytes, *, max_pixels: int = 4096 * 4096) -> ImageInfo:
    """PNG/JPEG/WebP header check and full decode; MediaError with the reason otherwise."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise MediaError("not an image (could not decode: the upload is empty)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise MediaError(
            "not an image (could not decode: unrecognised format); use PNG, JPEG or WebP"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise MediaError(f"image is too large to decode safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"image is truncated or corrupt (could not decode: {_reason(exc)})") from exc
    with image:
        if image.format not in IMAGE_FORMATS:
            raise MediaError(f"image format {image.format} is not supported; use PNG, JPEG or WebP")
        width, height = image.size
        if width * height > max_pixels:
            raise MediaError(
                f"image is {width}x{height} ({width * height:,} pixels); at most {max_pixels:,} pixels are "
                "allowed, so scale it down"
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise MediaError(f"image is truncated or corrupt (could not decode: {_reason(exc)})") from exc
        return ImageInfo(width=width, height=height, format=image.format, mode=image.mode)


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise MediaError(f"not an audio file (could not decode: {_reason(exc)})") from exc
    return samples, rate


def _scan(data: bytes) -> tuple[int, float]:
    """Decoded frame count and peak, a block at a time."""
    import soundfile as sf

    frames, peak = 0, 0.0
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                frames += block.shape[0]
                peak = max(peak, float(np.max(np.abs(block)))) if block.size else peak
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise MediaError(f"not an audio file (could not decode: {_reason(exc)})") from exc
    return frames, peak


def _k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two BS.1770 K-weighting biquads (high shelf, then high pass), designed for any sample rate.

    The analogue prototype and its bilinear transform follow libebur128; at 48 kHz they reproduce the
    coefficient table in the standard.
    """
    fc, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * fc / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf_b = np.array([vh + vb * k / q + k * k, 2 * (k * k - vh), vh - vb * k / q + k * k]) / a0
    shelf_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    fc, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * fc / rate)
    a0 = 1 + k / q + k * k
    # The standard's high pass keeps an unscaled [1, -2, 1] numerator.
    pass_b = np.array([1.0, -2.0, 1.0])
    pass_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return [(shelf_b, shelf_a), (pass_b, pass_a)]


def _duration_message(seconds: float, limit: float, bound: str, verb: str) -> str:
    actual, wanted = _fmt_seconds(seconds, limit)
    return f"audio is {actual} s; {bound} {wanted} s is {verb}"


def _fmt_seconds(value: float, limit: float) -> tuple[str, str]:
    """Both numbers with the fewest decimals (at least one place) that still tell them apart."""
    for places in range(1, 5):
        a, b = f"{value:.{places}f}", f"{limit:.{places}f}"
        if a != b:
            break
    return _trim(a), _trim(b)


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # libsndfile prefixes its messages with the stream repr, which means nothing to a user.
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
