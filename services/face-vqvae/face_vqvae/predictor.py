"""face-vqvae Predictor: speech + style -> N face-motion samples (FLAME 50+3 or ARKit-52 at 25 fps)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from orate.v1.common_pb2 import Motion
from orate.v1.models_pb2 import FaceVqvaeRequest, FaceVqvaeResponse

from face_vqvae._audio import load_speech
from face_vqvae.checkpoints import load_probtalk3d, read_state_dict
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.layouts import LAYOUTS
from face_vqvae.model import build_probtalk3d
from face_vqvae.style import StyleVocabulary, UnknownStyleError
from shared.media import MediaError, validate_audio
from shared.serving.predictor import InvalidRequest, Predictor


class FaceVqvaePredictor(Predictor):
    """Config keys: `config` (YAML path or name, default `full`), `checkpoint` (stage-2 `.ckpt`/`.pt`;
    None keeps random weights), `device` (default cpu), `trust_pickle` (allow Lightning pickles, for trusted
    files only).

    temperature 0 decodes by argmin (every sample identical); 0 < τ <= max draws codes from
    softmax(-d/τ) with a generator seeded by `seed`, so a request is reproducible.
    """

    request_type = FaceVqvaeRequest
    response_type = FaceVqvaeResponse

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.settings = FaceVqvaeConfig.from_yaml(config.get("config", "full"))
        self.layout = LAYOUTS[self.settings.layout]
        self.styles = StyleVocabulary.from_config(self.settings.style)
        self.device = torch.device(config.get("device", "cpu"))
        self.model: torch.nn.Module | None = None
        limits, model = self.settings.limits, self.settings.model
        if math.ceil(limits.max_audio_s * self.settings.fps) > model.max_len:
            raise ValueError("limits.max_audio_s is longer than the positional table (model.max_len frames)")

    def load(self) -> None:
        model = build_probtalk3d(self.settings)
        checkpoint = self.config.get("checkpoint")
        if checkpoint:
            load_probtalk3d(model, read_state_dict(Path(checkpoint), bool(self.config.get("trust_pickle"))))
        self.model = model.to(self.device).eval()

    def check(self, request: FaceVqvaeRequest) -> None:
        limits = self.settings.limits
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
        """Speech encoders run per request (lengths differ); the predictor runs once per group of equal
        length; sampling and decoding run per request with its own seeded generator."""
        if self.model is None:
            raise RuntimeError("load() must run before predict()")
        features = [self._features(request) for request in batch]
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

    def _features(self, request: FaceVqvaeRequest) -> torch.Tensor:
        wave = torch.from_numpy(load_speech(request.audio.data, self.settings.sample_rate)).to(self.device)
        return self.model.audio_features(wave)

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
                    fps=self.settings.fps,
                    frames=frames,
                    dims=dims,
                    data_f32=np.ascontiguousarray(sample).tobytes(),
                )
                for sample in raw
            ]
        )
