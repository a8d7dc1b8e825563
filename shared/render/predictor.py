"""The `preview-render` predictor: ARKit-52 face motion (+ speech) to a preview mp4 of the open rig's head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from orate.v1 import common_pb2, models_pb2

from shared.media import MediaError, validate_audio
from shared.render.preview import render_face_motion
from shared.rigs.arkit import ARKIT_SHAPES
from shared.rigs.open_rig import load_face_rig
from shared.serving.predictor import InvalidRequest, Predictor

LAYOUT = "arkit-52"
MAX_SIZE = 1024
MAX_SECONDS = 120.0


class PreviewRenderPredictor(Predictor):
    request_type = models_pb2.PreviewRenderRequest
    response_type = models_pb2.PreviewRenderResponse

    def load(self) -> None:
        self.rig = load_face_rig()

    def check(self, request: models_pb2.PreviewRenderRequest) -> None:
        motion = request.motion
        if motion.layout != LAYOUT or motion.dims != len(ARKIT_SHAPES):
            raise InvalidRequest(
                f"motion must be {LAYOUT} with {len(ARKIT_SHAPES)} dims, got {motion.layout!r}"
            )
        if motion.frames < 1 or len(motion.data_f32) != 4 * motion.frames * motion.dims:
            raise InvalidRequest(
                f"motion data holds {len(motion.data_f32)} bytes, not {motion.frames} frames"
            )
        if not 1 <= motion.fps <= 120:
            raise InvalidRequest(f"motion fps must be within 1..120, got {motion.fps:g}")
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
        motion = request.motion
        curves = np.frombuffer(motion.data_f32, dtype="<f4").reshape(motion.frames, motion.dims)
        fps = round(motion.fps)
        mp4 = render_face_motion(
            curves, request.audio.data or None, fps=fps, size=request.size or 256, rig=self.rig
        )
        duration = (
            validate_audio(request.audio.data).duration_s if request.audio.data else motion.frames / fps
        )
        video = common_pb2.Video(data=mp4, media_type="video/mp4", duration_s=duration, fps=fps)
        return models_pb2.PreviewRenderResponse(video=video)
