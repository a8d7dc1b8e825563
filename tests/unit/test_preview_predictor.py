"""The preview-render predictor: ARKit-52 motion + speech to an mp4 as long as the speech; compare mode puts
more clips beside it; body mode draws open-rig body motion wearing the face."""

from __future__ import annotations

import numpy as np
import pytest
from orate.v1 import common_pb2, models_pb2
from preview_render.predictor import BODY_BONES, BODY_LAYOUT, PreviewRenderPredictor

from shared.media import encode_wav
from shared.render.video import probe_mp4, read_video
from shared.rigs.arkit import ARKIT_INDEX, ARKIT_SHAPES
from shared.rigs.rotations import axis_angle_to_rot6d
from shared.serving.predictor import InvalidRequest


def _motion(frames: int, shape: str = "jawOpen") -> common_pb2.Motion:
    curves = np.zeros((frames, len(ARKIT_SHAPES)), np.float32)
    curves[:, ARKIT_INDEX[shape]] = np.linspace(0, 1, frames)
    return common_pb2.Motion(
        layout="arkit-52",
        fps=25,
        frames=frames,
        dims=len(ARKIT_SHAPES),
        data_f32=curves.astype("<f4").tobytes(),
    )


def _body(frames: int, fps: float = 25) -> common_pb2.Motion:
    """Open-rig rot6d poses: every bone turning a little further each frame."""
    angles = np.linspace(0, 0.3, frames)[:, None, None] * np.ones((1, BODY_BONES, 3))
    poses = axis_angle_to_rot6d(angles).astype("<f4")
    return common_pb2.Motion(
        layout=BODY_LAYOUT, fps=fps, frames=frames, dims=6 * BODY_BONES, data_f32=poses.tobytes()
    )


def _request(frames: int = 20, seconds: float = 1.2, size: int = 64) -> models_pb2.PreviewRenderRequest:
    motion = _motion(frames)
    t = np.arange(int(16000 * seconds)) / 16000
    wav = encode_wav((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)
    return models_pb2.PreviewRenderRequest(motion=motion, audio=common_pb2.Audio(data=wav), size=size)


@pytest.fixture(scope="module")
def predictor() -> PreviewRenderPredictor:
    loaded = PreviewRenderPredictor()
    try:
        loaded.load()
    except Exception as exc:  # no GL context or no anny build on this machine
        pytest.skip(f"preview rendering unavailable here: {exc}")
    return loaded


def test_preview_lasts_as_long_as_the_speech(predictor: PreviewRenderPredictor) -> None:
    request = _request(frames=20, seconds=1.2)
    predictor.check(request)
    (response,) = predictor.predict([request])
    info = probe_mp4(response.video.data)
    assert response.video.media_type == "video/mp4"
    assert info.duration_s == pytest.approx(1.2, abs=1 / 25 + 0.03)
    assert response.video.duration_s == pytest.approx(1.2, abs=1e-3)


def test_compare_mode_renders_the_clips_side_by_side(predictor: PreviewRenderPredictor) -> None:
    request = _request(frames=20, seconds=1.2, size=64)
    request.compare.extend([_motion(12, "browInnerUp"), _motion(25, "mouthSmileLeft")])
    request.labels.extend(["a", "b", "c"])
    predictor.check(request)
    (response,) = predictor.predict([request])
    info = probe_mp4(response.video.data)
    assert (info.width, info.height, info.frames) == (3 * 64, 64, 30)


def test_body_mode_draws_one_figure_as_long_as_the_speech(predictor: PreviewRenderPredictor) -> None:
    request = _request(frames=20, seconds=1.2, size=96)
    request.motion.data_f32 = bytes(len(request.motion.data_f32))  # a still face: only the body moves
    request.body.CopyFrom(_body(24))
    predictor.check(request)
    (response,) = predictor.predict([request])
    info = probe_mp4(response.video.data)
    assert (info.width, info.height, info.frames) == (96, 96, 30)
    assert info.duration_s == pytest.approx(1.2, abs=1 / 25 + 0.03)
    frames = read_video(response.video.data).frames.astype(int)
    assert np.abs(frames[20] - frames[0]).mean() > 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: setattr(r.motion, "layout", "flame-53"), "arkit-52"),
        (lambda r: setattr(r.motion, "frames", 21), "not 21 frames"),
        (lambda r: setattr(r.motion, "fps", 0), "fps"),
        (lambda r: setattr(r, "size", 5000), "size"),
        (lambda r: setattr(r.audio, "data", b"not audio"), "audio"),
        (lambda r: (r.compare.append(_motion(5)), r.labels.append("one")), "1 labels for 2 clips"),
        (lambda r: r.compare.append(common_pb2.Motion(layout="flame-53", dims=53)), r"compare\[0\] must be"),
        (lambda r: r.compare.extend([_motion(3)] * 8), "at most 8 clips"),
        (lambda r: (r.compare.append(_motion(5)), setattr(r.compare[0], "fps", 30)), "fps 30 differs"),
        (lambda r: r.body.CopyFrom(common_pb2.Motion(layout="smplx-55-rot6d", dims=330)), "body must be"),
        (lambda r: r.body.CopyFrom(_body(20, fps=30)), "body fps 30 differs"),
        (lambda r: (r.body.CopyFrom(_body(20)), setattr(r.body, "frames", 19)), "not 19 frames"),
        (lambda r: r.body.CopyFrom(_body(25 * 121)), "at most 120 s"),
        (lambda r: (r.body.CopyFrom(_body(20)), r.compare.append(_motion(5))), "faces alone"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(change, reason: str) -> None:
    request = _request()
    change(request)
    with pytest.raises(InvalidRequest, match=reason):
        PreviewRenderPredictor().check(request)
