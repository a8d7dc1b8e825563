"""tts-gesture Predictor: text and a voice -> speech, body and face motion, streamed phrase by phrase
(tts_gesture.inference.Synthesizer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from orate.v1.common_pb2 import Audio, Motion
from orate.v1.models_pb2 import PhonemeTiming, TtsGestureChunk, TtsGestureRequest, TtsGestureResponse
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.media import encode_wav
from shared.serving.predictor import InvalidRequest, StreamingPredictor
from tts_gesture.checkpoints import CONFIG_FILE, WEIGHTS_FILE
from tts_gesture.config import MOTION_FPS, SERVICE_DIR
from tts_gesture.inference import MAX_CHARACTERS, InputError, Synthesizer, Utterance
from tts_gesture.layouts import FOOT_CONTACTS, TRANSLATION

# Motion layout names on the wire (orate.v1.Motion.layout), by the checkpoint's rig.
BODY_LAYOUTS = {"smplx": "smplx-55-rot6d", "open-rig": "open-rig-104-rot6d"}
FACE_LAYOUTS = {"smplx": "flame-100", "open-rig": "arkit-52"}


class TtsGestureSettings(BaseModel):
    """What the predictor loads and the limits it enforces; every key is also a `predictor_config` key."""

    checkpoint: Path = Field(
        Path("demo"),
        description="a checkpoint folder (config.yaml and model.pth) or a bare name in "
        "<assets_dir>/checkpoints (`demo`)",
    )
    max_characters: int = Field(MAX_CHARACTERS, ge=1, description="longer text is rejected")
    device: str = Field("cpu", description="torch device")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None keeps torch's")
    assets_dir: Path = Field(SERVICE_DIR, description="folder whose checkpoints/ resolves bare names")

    def checkpoint_dir(self) -> Path:
        """The checkpoint folder the settings name; FileNotFoundError with the reason if it is not one."""
        path = self.checkpoint
        if not path.exists() and len(path.parts) == 1:
            path = self.assets_dir / "checkpoints" / path
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(
                f"tts-gesture checkpoint {path} is not a checkpoint folder (it needs {CONFIG_FILE} and "
                f"{WEIGHTS_FILE}): set ORATE_TTS_GESTURE__CHECKPOINT or predictor_config.checkpoint"
            )
        return path


class _Env(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORATE_", env_nested_delimiter="__", extra="ignore")

    tts_gesture: TtsGestureSettings = Field(default_factory=TtsGestureSettings)


def load_settings(**overrides: Any) -> TtsGestureSettings:
    """The environment's block (ORATE_TTS_GESTURE__CHECKPOINT=...) with `overrides` on top, read now."""
    from_env = _Env().tts_gesture.model_dump(exclude_unset=True)
    return TtsGestureSettings.model_validate({**from_env, **overrides})


class TtsGesturePredictor(StreamingPredictor):
    """Config keys: those of `TtsGestureSettings`, over the environment's ORATE_TTS_GESTURE__* values.

    Streams one TtsGestureChunk per phrase as soon as it is synthesised, then the whole TtsGestureResponse
    (the chunks laid end to end)."""

    request_type = TtsGestureRequest
    response_type = TtsGestureResponse
    chunk_type = TtsGestureChunk

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.settings = load_settings(**config)
        # Resolved here so that a deployment without a checkpoint fails at construction, with the reason.
        self.checkpoint = self.settings.checkpoint_dir()
        self.synthesizer: Synthesizer | None = None

    def load(self) -> None:
        if self.settings.num_threads is not None:
            torch.set_num_threads(self.settings.num_threads)
        self.synthesizer = Synthesizer.from_checkpoint(
            self.checkpoint, self.settings.device, self.settings.max_characters
        )

    def check(self, request: TtsGestureRequest) -> None:
        try:
            self._loaded().plan(request.text, request.voice, request.language)
        except InputError as error:
            raise InvalidRequest(str(error)) from error

    def predict_stream(self, request: TtsGestureRequest) -> Iterator[TtsGestureChunk | TtsGestureResponse]:
        # request.seed changes nothing yet: inference draws no random numbers (Synthesizer.stream).
        plan = self._loaded().plan(request.text, request.voice, request.language)
        parts = []
        for index, part in enumerate(self._loaded().run(plan)):
            parts.append(part)
            yield TtsGestureChunk(index=index, text=part.text, start_s=part.start_s, **self._fields(part))
        whole = Utterance.join(parts)
        yield TtsGestureResponse(voice=plan.voice.name, language=plan.voice.language, **self._fields(whole))

    def _loaded(self) -> Synthesizer:
        if self.synthesizer is None:
            raise RuntimeError("load() must run before check() or predict()")
        return self.synthesizer

    def _fields(self, part: Utterance) -> dict[str, Any]:
        """The fields a chunk and the response share."""
        rig = self._loaded().config.layout
        return {
            "audio": Audio(data=encode_wav(part.waveform, part.sample_rate), media_type="audio/wav"),
            "body": _motion(BODY_LAYOUTS[rig], part.pose),
            "face": _motion(FACE_LAYOUTS[rig], part.expression),
            "translation": _motion(f"translation-{TRANSLATION}", part.translation),
            "foot_contact": _motion(f"foot-contact-{FOOT_CONTACTS}", part.foot_contact),
            "phonemes": [PhonemeTiming(phoneme=p, start_s=s, end_s=e) for p, s, e in part.phoneme_times()],
            "audio_s": part.audio_s,
        }


def _motion(layout: str, frames: np.ndarray) -> Motion:
    return Motion(
        layout=layout,
        fps=MOTION_FPS,
        frames=frames.shape[0],
        dims=frames.shape[1],
        data_f32=np.ascontiguousarray(frames, dtype="<f4").tobytes(),
    )
