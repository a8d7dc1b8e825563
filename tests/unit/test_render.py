"""Preview renderer: meshes to frames (moderngl on llvmpipe) and frames plus speech to H.264/AAC mp4."""

from __future__ import annotations

import io

import numpy as np
import pytest

from shared.media import encode_wav
from shared.render.preview import fit_frames, frame_count, render_face_motion, render_vertices
from shared.render.raster import ANNY_VIEW, FLAME_VIEW, MeshRenderer, RenderError
from shared.render.video import encode_mp4, probe_mp4
from shared.rigs.arkit import ARKIT_INDEX

FPS = 25


def _cube(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A unit cube ([T, 8, 3], spinning about +Z) and its 12 triangles."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    faces = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )  # fmt: skip
    angles = np.linspace(0, np.pi / 2, frames)
    c, s, zero, one = np.cos(angles), np.sin(angles), np.zeros(frames), np.ones(frames)
    spin = np.stack(
        [np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], 1
    )
    return np.einsum("tij,vj->tvi", spin, corners), faces


def _wav(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return encode_wav((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


@pytest.fixture(scope="module")
def gl():
    """Skip the GL tests where no headless OpenGL context can be made (no libEGL / Mesa)."""
    vertices, faces = _cube(1)
    try:
        with MeshRenderer(faces, (vertices[0].min(0), vertices[0].max(0)), ANNY_VIEW, 32):
            pass
    except RenderError as exc:
        pytest.skip(str(exc))


def test_renderer_draws_the_mesh_in_the_middle_on_the_background(gl):
    vertices, faces = _cube(1)
    with MeshRenderer(faces, (vertices[0].min(0), vertices[0].max(0)), FLAME_VIEW, 64) as renderer:
        image = renderer.render(vertices[0])
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.ptp(image[0, 0]) < 8 and image[0, 0].max() < 50  # dark background in the corner
    assert image[32, 32].mean() > image[0, 0].mean() + 40  # a lit cube in the middle


@pytest.mark.parametrize("seconds", [1.37, 2.0])
def test_video_duration_matches_the_audio(gl, seconds):
    vertices, faces = _cube(10)  # shorter than the audio: the last frame is held
    mp4 = render_vertices(vertices, faces, _wav(seconds), fps=FPS, size=64)
    info = probe_mp4(mp4)
    assert len(mp4) > 1000
    assert abs(info.duration_s - seconds) <= 1 / FPS
    assert info.frames == frame_count(seconds, FPS) == round(seconds * FPS)
    assert (info.video_codec, info.audio_codec, info.audio_rate) == ("h264", "aac", 16000)
    assert (info.width, info.height) == (64, 64)


def test_video_without_audio_has_one_frame_per_pose(gl):
    vertices, faces = _cube(7)
    info = probe_mp4(render_vertices(vertices, faces, None, fps=FPS, size=48))
    assert info.frames == 7 and info.audio_codec is None


def test_face_motion_preview_moves_the_mouth(gl):
    pytest.importorskip("anny", reason="anny is not installed (pip install anny==0.6.2)")
    import av

    from shared.rigs.open_rig import load_open_rig

    curves = np.zeros((20, 52), dtype=np.float32)
    curves[10:, ARKIT_INDEX["jawOpen"]] = 1.0
    mp4 = render_face_motion(curves, _wav(0.8), fps=FPS, size=96, rig=load_open_rig().face_rig())
    assert abs(probe_mp4(mp4).duration_s - 0.8) <= 1 / FPS
    with av.open(io.BytesIO(mp4)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert len(frames) == 20
    assert np.abs(frames[15] - frames[5]).max() > 60 and np.abs(frames[6] - frames[5]).mean() < 1


def test_fit_frames_cuts_or_holds_the_last_frame():
    frames = np.arange(4)[:, None]
    assert fit_frames(frames, 2).ravel().tolist() == [0, 1]
    assert fit_frames(frames, 6).ravel().tolist() == [0, 1, 2, 3, 3, 3]
    assert frame_count(0.001, FPS) == 1


def test_encode_rejects_an_empty_clip():
    with pytest.raises(ValueError, match="no frames"):
        encode_mp4(iter([]), FPS)
