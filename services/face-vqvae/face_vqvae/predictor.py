"""face-vqvae Predictor: speech + style -> N face-motion samples (FLAME 50+3 or ARKit-52 at 25 fps)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from orate.v1.common_pb2 import Motion
from orate.v1.models_pb2 import FaceVqvaeRequest, FaceVqvaeResponse

from face_vqvae._audio import load_speech
from face_vqvae.layouts import LAYOUTS
from face_vqvae.loading import build_model, resolve
from face_vqvae.model import ProbTalk3D
from face_vqvae.settings import load_settings
from face_vqvae.style import StyleVocabulary, UnknownStyleError
from shared.media import MediaError, validate_audio
from shared.serving.predictor import InvalidRequest, Predictor


class FaceVqvaePredictor(Predictor):
    """Config keys: those of `FaceVqvaeSettings` (checkpoint, config, audio encoder, max_audio_s, device,
    ...), over the environment's ORATE_FACE_VQVAE__* values.

    temperature 0 decodes by argmin (every sample identical); 0 < τ <= max draws codes from
    softmax(-d/τ) with a generator seeded by `seed`, so a request is reproducible.
    """

    request_type = FaceVqvaeRequest
    response_type = FaceVqvaeResponse

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.settings = load_settings(**config)
        # The checkpoint is read here because its stored config sets the limits and styles check() uses.
        self.model_config, self._state = resolve(self.settings)
        self.layout = LAYOUTS[self.model_config.layout]
        self.styles = StyleVocabulary.from_config(self.model_config.style)
        self.device = torch.device(self.settings.device)
        self.model: ProbTalk3D | None = None

    def load(self) -> None:
        if self.settings.num_threads is not None:
            torch.set_num_threads(self.settings.num_threads)
        self.model = build_model(self.model_config, self._state, self.settings.init_seed).to(self.device)
        self._state = None

    def check(self, request: FaceVqvaeRequest) -> None:
        limits = self.model_config.limits
        try:
            validate_audio(request.audio.data, min_seconds=limits.min_audio_s, max_seconds=limits.max_audio_s)
        except MediaError as error:
            raise InvalidRequest(str(error)) from error
        try:
            self.styles.check(request.identity, request.emotion, request.intensity)
        except UnknownStyleError as error:
            raise InvalidRequest(str(error)) from error
        if not 0.0 <= request.temperature <= limits.max_temperature:  # also rejects NaN
            raise InvalidRequest(
                f"temperature {request.temperature} out of range; use 0 (argmin) to {limits.max_temperature}"
            )
        if not 0 <= request.num_samples <= limits.max_samples:
            raise InvalidRequest(
                f"num_samples {request.num_samples} out of range; use 1 to {limits.max_samples} (0 means 1)"
            )

    @torch.inference_mode()
    def predict(self, batch: Sequence[FaceVqvaeRequest]) -> list[FaceVqvaeResponse]:
        """The speech encoder sees the whole batch (Whisper shares passes across requests); the predictor
        runs once per group of equal length; sampling and decoding run per request with its own seeded
        generator."""
        if self.model is None:
            raise RuntimeError("load() must run before predict()")
        rate = self.model_config.sample_rate
        waves = [torch.from_numpy(load_speech(r.audio.data, rate)).to(self.device) for r in batch]
        features = self.model.audio_features_batch(waves)
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, f in enumerate(features):
            by_length[f.shape[1]].append(i)
        latents: dict[int, torch.Tensor] = {}
        for members in by_length.values():
            audio = torch.cat([features[i] for i in members])
            style = self.styles.encode_batch(
                [(batch[i].identity, batch[i].emotion, batch[i].intensity) for i in members]
            ).to(self.device)
            for i, z in zip(members, self.model.predict_latent(audio, style), strict=True):
                latents[i] = z
        return [self._respond(request, latents[i]) for i, request in enumerate(batch)]

    def _respond(self, request: FaceVqvaeRequest, z_hat: torch.Tensor) -> FaceVqvaeResponse:
        generator = torch.Generator(device=self.device).manual_seed(request.seed)
        num_samples = max(request.num_samples, 1)
        motion = self.model.sample(z_hat[None], num_samples, request.temperature, generator)[0]
        raw = self.layout.from_model(motion).float().cpu().numpy().astype("<f4")
        frames, dims = raw.shape[1], raw.shape[2]
        return FaceVqvaeResponse(
            samples=[
                Motion(
                    layout=self.layout.name,
                    fps=self.model_config.fps,
                    frames=frames,
                    dims=dims,
                    data_f32=np.ascontiguousarray(sample).tobytes(),
                )
                for sample in raw
            ]
        )
