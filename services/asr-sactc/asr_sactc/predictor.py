"""asr-sactc Predictor: a multi-talker recording → speaker-attributed transcripts (SOT + SACTC model)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from orate.v1.models_pb2 import AsrSactcRequest, AsrSactcResponse, SpeakerTranscript

from asr_sactc.recognizer import SACTCRecognizer
from asr_sactc.settings import load_settings
from asr_sactc.windowing import CUT_FRAME_S, Window, plan_speech_windows, plan_windows, stitch
from shared.media import MediaError, load_audio, validate_audio
from shared.serving.predictor import InvalidRequest, Predictor
from shared.vad import SileroVAD


def loudest_frame_dbfs(wave: np.ndarray, rate: int, frame_s: float = CUT_FRAME_S) -> float:
    """RMS level in dBFS of the loudest non-overlapping frame (the whole wave when shorter than a frame)."""
    frame = max(1, round(frame_s * rate))
    count = max(1, wave.shape[0] // frame)
    frames = np.resize(wave.astype(np.float64), count * frame).reshape(count, frame)
    power = float(np.max(np.mean(frames**2, axis=1)))
    return 10 * np.log10(power) if power > 0 else -np.inf


class AsrSactcPredictor(Predictor):
    """Config keys: those of `AsrSactcSettings` (checkpoint, config, decode, limits, windows, device, ...),
    over the environment's ORATE_ASR_SACTC__* values.

    Audio at any rate from min_sample_rate up is resampled to the model's 16 kHz and mixed to mono.
    Recordings longer than window_s are decoded in windows cut at pauses; all windows of a batch are
    encoded together (sorted by length, max_batch_windows per call). Speaker labels follow SOT order
    within each window (see `asr_sactc.windowing.stitch`).
    """

    request_type = AsrSactcRequest
    response_type = AsrSactcResponse

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.settings = load_settings(**config)
        # Resolved here so a deployment without a checkpoint fails at construction, with the reason.
        self.config_path, self.model_path = self.settings.model_files()
        self.recognizer: SACTCRecognizer | None = None
        self.vad: SileroVAD | None = None

    def load(self) -> None:
        if self.settings.num_threads is not None:
            torch.set_num_threads(self.settings.num_threads)
        # A private RNG stream: equal seeds give equal random weights in every replica (tests, benchmarks).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.settings.init_seed)
            self.recognizer = SACTCRecognizer(
                self.config_path, self.model_path, self.settings.device, self.settings.decode
            )
        chunk_s = getattr(self.recognizer.model.frontend, "chunk_s", None)
        if chunk_s is not None and self.settings.window_s > chunk_s:
            raise ValueError(f"window_s {self.settings.window_s} exceeds the model's {chunk_s} s window")
        if self.settings.vad == "silero":
            self.vad = SileroVAD(self.settings.vad_weights)

    def check(self, request: AsrSactcRequest) -> None:
        s = self.settings
        if not 0 <= request.beam_size <= s.max_beam_size:
            raise InvalidRequest(
                f"beam_size {request.beam_size} out of range; use 1 to {s.max_beam_size} (0: the default)"
            )
        try:
            info = validate_audio(
                request.audio.data,
                min_seconds=s.min_audio_s,
                max_seconds=s.max_audio_s,
                # With the VAD on, silence is an answer (no_speech), not a bad request.
                allow_silence=self.settings.vad != "off",
            )
            wave, rate = load_audio(request.audio.data)
        except MediaError as error:
            raise InvalidRequest(str(error)) from error
        if info.sample_rate < s.min_sample_rate:
            raise InvalidRequest(
                f"audio sample rate {info.sample_rate} Hz is too low; at least {s.min_sample_rate} Hz is "
                "needed (the model hears 16 kHz speech)"
            )
        level = loudest_frame_dbfs(wave, rate)
        if s.vad == "off" and level < s.silence_dbfs:
            raise InvalidRequest(
                f"audio is silent: its loudest {CUT_FRAME_S * 1000:.0f} ms is {level:.0f} dBFS, below "
                f"{s.silence_dbfs:.0f} dBFS; record or upload speech"
            )

    def predict(self, batch: Sequence[AsrSactcRequest]) -> list[AsrSactcResponse]:
        if self.recognizer is None:
            raise RuntimeError("load() must run before predict()")
        rate = self.recognizer.sample_rate
        waves = [load_audio(request.audio.data, target_rate=rate)[0] for request in batch]
        plans = [self._plan(w, rate) for w in waves]
        # Every window of the batch, grouped by beam size (a decode setting shared by one model call).
        by_beam: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, (request, plan) in enumerate(zip(batch, plans, strict=True)):
            by_beam[request.beam_size].extend((i, j) for j in range(len(plan)))
        streams: dict[tuple[int, int], list[str]] = {}
        for beam, keys in by_beam.items():
            # Sorted by length so each model call pads its windows as little as possible.
            keys.sort(key=lambda key: _length(plans[key[0]][key[1]]))
            for first in range(0, len(keys), self.settings.max_batch_windows):
                chunk = keys[first : first + self.settings.max_batch_windows]
                pieces = [waves[i][plans[i][j].start : plans[i][j].end] for i, j in chunk]
                texts = self.recognizer.transcribe(pieces, rate, beam_size=beam or None)
                streams.update(zip(chunk, texts, strict=True))
        responses = []
        for i, plan in enumerate(plans):
            segments, sot_text = stitch(plan, [streams[i, j] for j in range(len(plan))], rate)
            responses.append(
                AsrSactcResponse(
                    speakers=[
                        SpeakerTranscript(speaker=s.speaker, text=s.text, start_s=s.start_s, end_s=s.end_s)
                        for s in segments
                    ],
                    sot_text=sot_text,
                    audio_s=waves[i].shape[0] / rate,
                    no_speech=self.vad is not None and not plan,
                )
            )
        return responses

    def _plan(self, wave: np.ndarray, rate: int) -> list[Window]:
        """Windows to decode: speech only when the VAD is on (none for audio without speech)."""
        s = self.settings
        if self.vad is None:
            return plan_windows(wave, rate, s.window_s, s.window_search_s)
        speech = [(seg.start, seg.end) for seg in self.vad.segments(wave)]
        return plan_speech_windows(wave, rate, speech, s.window_s, s.window_search_s)


def _length(window: Window) -> int:
    return window.end - window.start
