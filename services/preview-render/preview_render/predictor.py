"""The `preview-render` predictor: ARKit-52 face motion (+ speech) to a preview mp4 of the open rig's face;
several clips side by side in compare mode."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from orate.v1 import common_pb2, models_pb2

from shared.media import MediaError, validate_audio
from shared.render.face_look import paint_face
from shared.render.preview import MAX_PANELS, PREVIEW_SIZE, render_face_compare
from shared.rigs.arkit import ARKIT_SHAPES
from shared.rigs.open_rig import load_face_rig
from shared.serving.predictor import InvalidRequest, Predictor

LAYOUT = "arkit-52"
MAX_SIZE = 1024
MAX_SECONDS = 120.0
MAX_LABEL_CHARS = 40


class PreviewRenderPredictor(Predictor):
    request_type = models_pb2.PreviewRenderRequest
    response_type = models_pb2.PreviewRenderResponse

    def load(self) -> None:
        self.rig = load_face_rig()
        # Fill the face labels' cache now: building it the first time reads anny's full model (seconds).
        paint_face(self.rig)

    def check(self, request: models_pb2.PreviewRenderRequest) -> None:
        clips = [request.motion, *request.compare]
        if len(clips) > MAX_PANELS:
            raise InvalidRequest(f"at most {MAX_PANELS} clips (motion and compare), got {len(clips)}")
        for i, motion in enumerate(clips):
            name = "motion" if i == 0 else f"compare[{i - 1}]"
            if motion.layout != LAYOUT or motion.dims != len(ARKIT_SHAPES):
                raise InvalidRequest(
                    f"{name} must be {LAYOUT} with {len(ARKIT_SHAPES)} dims, got {motion.layout!r}"
                )
            if motion.frames < 1 or len(motion.data_f32) != 4 * motion.frames * motion.dims:
                raise InvalidRequest(
                    f"{name} data holds {len(motion.data_f32)} bytes, not {motion.frames} frames"
                )
            if motion.fps != request.motion.fps:
                raise InvalidRequest(
                    f"{name} fps {motion.fps:g} differs from motion's {request.motion.fps:g}"
                )
        if not 1 <= request.motion.fps <= 120:
            raise InvalidRequest(f"motion fps must be within 1..120, got {request.motion.fps:g}")
        if request.labels and len(request.labels) != len(clips):
            raise InvalidRequest(f"{len(request.labels)} labels for {len(clips)} clips: give one per clip")
        if any(len(label) > MAX_LABEL_CHARS for label in request.labels):
            raise InvalidRequest(f"labels must be at most {MAX_LABEL_CHARS} characters")
        if not 0 <= request.size <= MAX_SIZE:
            raise InvalidRequest(f"size must be within 0..{MAX_SIZE}, got {request.size}")
        if request.audio.data:
            try:
                validate_audio(request.audio.data, max_seconds=MAX_SECONDS)
            except MediaError as exc:
                raise InvalidRequest(f"audio: {exc}") from exc

    def predict(
        self, batch: Sequence[models_pb2.PreviewRenderRequest]
    ) -> list[models_pb2.PreviewRenderResponse]:
        return [self._render(request) for request in batch]

    def _render(self, request: models_pb2.PreviewRenderRequest) -> models_pb2.PreviewRenderResponse:
        clips = [
            np.frombuffer(m.data_f32, dtype="<f4").reshape(m.frames, m.dims)
            for m in (request.motion, *request.compare)
        ]
        fps = round(request.motion.fps)
        mp4 = render_face_compare(
            clips,
            request.audio.data or None,
            fps=fps,
            size=request.size or PREVIEW_SIZE,
            labels=list(request.labels),
            rig=self.rig,
        )
        duration = (
            validate_audio(request.audio.data).duration_s
            if request.audio.data
            else max(len(c) for c in clips) / fps
        )
        video = common_pb2.Video(data=mp4, media_type="video/mp4", duration_s=duration, fps=fps)
        return models_pb2.PreviewRenderResponse(video=video)
