"""Video I/O with PyAV (bundled FFmpeg): mux RGB frames and a waveform into an H.264/AAC mp4; read videos."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared.media import MediaError

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import OutputContainer

# AAC frames are 1024 samples; feeding whole frames keeps pts exact.
_AAC_FRAME = 1024


@dataclass(frozen=True)
class Mp4Info:
    duration_s: float  # the container's (longest stream, edit lists applied)
    frames: int
    width: int
    height: int
    video_codec: str
    audio_codec: str | None
    audio_rate: int | None


@dataclass(frozen=True)
class VideoClip:
    frames: np.ndarray  # [T, H, W, 3] uint8 RGB, in presentation order
    fps: float  # the video stream's average frame rate
    audio: tuple[np.ndarray, int] | None  # (mono float32 waveform in [-1, 1], sample rate); None if silent


def encode_mp4(
    frames: Iterable[np.ndarray], fps: int, audio: tuple[np.ndarray, int] | None = None, crf: int = 23
) -> bytes:
    """frames: [H, W, 3] uint8 (H and W even); audio: (mono float32 waveform in [-1, 1], sample rate)."""
    import av

    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise ValueError("no frames to encode")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "veryfast"})
        video.pix_fmt = "yuv420p"
        video.height, video.width = first.shape[:2]
        # Every stream must exist before the first packet: that is when the mp4 header is written.
        pending = (_audio_stream(container, audio[1]), audio[0]) if audio is not None else None
        for frame in itertools.chain([first], stream):
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
            for packet in video.encode(rgb):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if pending is not None:
            _encode_audio(container, *pending)
    return buffer.getvalue()


def probe_mp4(data: bytes) -> Mp4Info:
    """Duration, frame count and codecs of an mp4 held in memory."""
    import av

    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        info = dict(
            duration_s=float(container.duration) / av.time_base if container.duration else 0.0,
            width=video.codec_context.width,
            height=video.codec_context.height,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio else None,
            audio_rate=audio.codec_context.sample_rate if audio else None,
        )
        frames = sum(1 for _ in container.decode(video=0))
    return Mp4Info(frames=frames, **info)


def read_video(data: bytes | Path) -> VideoClip:
    """Decode every frame of the first video stream, and the first audio stream downmixed to mono.

    Everything is held in memory, so this is for clips, not films. MediaError when the input is not a video
    FFmpeg can decode; FileNotFoundError when a path does not exist.
    """
    import av

    if isinstance(data, bytes) and not data:
        raise MediaError("not a video file (could not decode: the upload is empty)")
    try:
        with av.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as container:
            if not container.streams.video:
                raise MediaError("not a video file (it has no video stream)")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            rate = video.average_rate or video.guessed_rate
            # Any input layout and sample format comes out as one float channel at the stream's own rate.
            mono = av.AudioResampler(format="fltp", layout="mono", rate=audio.rate) if audio else None
            frames: list[np.ndarray] = []
            samples: list[np.ndarray] = []
            for packet in container.demux(*[s for s in (video, audio) if s is not None]):
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        frames.append(frame.to_ndarray(format="rgb24"))
                    elif mono is not None:
                        samples += [f.to_ndarray()[0] for f in mono.resample(frame)]
            if mono is not None:
                samples += [f.to_ndarray()[0] for f in mono.resample(None)]
    except FileNotFoundError:
        raise
    except av.FFmpegError as exc:
        raise MediaError(f"not a video file (could not decode: {exc.strerror or exc})") from exc
    if not frames:
        raise MediaError("not a video file (its video stream has no decodable frame)")
    waveform = np.concatenate(samples).astype(np.float32) if samples else None
    return VideoClip(
        frames=np.stack(frames),
        fps=float(rate) if rate else 0.0,
        audio=(waveform, audio.rate) if waveform is not None and audio is not None else None,
    )


def _audio_stream(container: OutputContainer, sample_rate: int) -> AudioStream:
    stream = container.add_stream("aac", rate=sample_rate)
    stream.layout = "mono"
    return stream


def _encode_audio(container: OutputContainer, stream: AudioStream, waveform: np.ndarray) -> None:
    import av

    samples = np.ascontiguousarray(np.clip(waveform, -1.0, 1.0), dtype=np.float32)
    for start in range(0, samples.shape[0], _AAC_FRAME):
        frame = av.AudioFrame.from_ndarray(
            samples[None, start : start + _AAC_FRAME], format="fltp", layout="mono"
        )
        frame.sample_rate = stream.rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
