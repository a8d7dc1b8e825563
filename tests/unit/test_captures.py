"""Rendered captures: written cameras agree with what the renderer draws, portraits hold the head, and a take
renders the same twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.render.raster import ANNY_VIEW, FLAME_VIEW, MeshRenderer, RenderError
from shared.synth.captures import (
    CaptureSettings,
    cube_around,
    make_camera,
    orbit_views,
    render_sequence,
    silhouette,
)

CUBE_FACES = np.array(
    [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
     [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
)  # fmt: skip
CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)


@pytest.fixture(scope="module")
def gl():
    """Skip where no headless OpenGL context can be made (no libEGL / Mesa)."""
    try:
        with MeshRenderer(CUBE_FACES, (CORNERS.min(0), CORNERS.max(0)), ANNY_VIEW, 32):
            pass
    except RenderError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("view", [ANNY_VIEW, FLAME_VIEW, *orbit_views(5, 25.0)])
def test_a_known_point_projects_where_the_renderer_draws_it(gl, view):
    point = np.array([0.12, -0.07, 0.21])
    marker = point + 0.015 * CORNERS
    camera = make_camera((np.array([-0.5, -0.4, -0.6]), np.array([0.4, 0.5, 0.7])), view, 128, 30.0)
    with camera.renderer(CUBE_FACES) as renderer:
        alpha = silhouette(renderer.render(marker))
    rows, cols = np.nonzero(alpha)
    assert rows.size > 4
    drawn = np.array([cols.mean() + 0.5, rows.mean() + 0.5])  # pixel centres
    assert np.abs(camera.project(point) - drawn).max() < 0.75
    # The same camera in OpenCV form: K @ (world -> camera, y down, z forward).
    rotation, eye = camera.camera_to_world[:3, :3], camera.camera_to_world[:3, 3]
    local = (point - eye) @ rotation * [1.0, -1.0, -1.0]
    pixel = camera.intrinsics() @ local
    assert np.allclose(pixel[:2] / pixel[2], camera.project(point))
    assert np.allclose(rotation.T @ rotation, np.eye(3)) and np.isclose(np.linalg.det(rotation), 1.0)


def test_orbit_cameras_circle_the_subject_at_one_elevation(gl):
    bounds = cube_around(np.array([[0.0, 0.0, 0.0], [0.4, 0.3, 1.6]]))
    eyes = np.array([make_camera(bounds, v, 64, 30.0).camera_to_world[:3, 3] for v in orbit_views(6, 15.0)])
    offsets = eyes - (bounds[0] + bounds[1]) / 2
    elevation = np.degrees(np.arcsin(offsets[:, 2] / np.linalg.norm(offsets, axis=1)))
    assert np.allclose(elevation, 15.0) and offsets[0, 1] < 0  # view 0 in front, on -Y


@pytest.fixture(scope="module")
def takes(gl, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """One short take rendered twice; and the head's vertex indices."""
    pytest.importorskip("anny", reason="anny is not installed (pip install anny==0.6.2)")
    from shared import voices
    from shared.rigs.open_rig import load_face_rig, load_open_rig
    from shared.synth.gestures import build_library, load_bvh_clips, make_sequence

    english = [v.id for v in voices.available_voices().values() if v.language.startswith("en")]
    if not english:
        pytest.skip("no English voice is installed (apt-get install flite or espeak-ng)")
    try:
        clips = load_bvh_clips(download=False)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    rig = load_open_rig()
    head = load_face_rig().vertex_ids
    sequence = make_sequence(build_library(clips, rig.skeleton()), "t", "Hello there.", english[0], seed=3)
    settings = CaptureSettings(views=3, size=64, portrait_size=64, stride=4, max_frames=8)
    outs = [tmp_path_factory.mktemp(f"take{k}") for k in range(2)]
    for out in outs:
        render_sequence(rig, head, sequence, out, settings)
    return outs[0], outs[1], head


def _pixels(camera_to_world: np.ndarray, meta: dict, points: np.ndarray) -> np.ndarray:
    """Project with the written camera only (transforms.json fields)."""
    c2w = np.asarray(camera_to_world)
    local = (points - c2w[:3, 3]) @ c2w[:3, :3]
    depth = -local[..., 2]
    return np.stack(
        [
            meta["cx"] + meta["fl_x"] * local[..., 0] / depth,
            meta["cy"] - meta["fl_y"] * local[..., 1] / depth,
        ],
        -1,
    )


def test_every_view_sees_the_head_where_transforms_json_puts_it(takes):
    out, _, _ = takes
    meta = json.loads((out / "transforms.json").read_text())
    motion = np.load(out / "motion.npz")
    head = list(motion["joint_names"]).index("head")
    assert len(meta["frames"]) == 3 * 2 and meta["w"] == meta["h"] == 64
    for frame in meta["frames"]:
        u, v = _pixels(frame["transform_matrix"], meta, motion["joints"][frame["frame"], head])
        image = np.array(Image.open(out / frame["file_path"]))
        assert image.shape == (64, 64, 4) and 0 <= u < 64 and 0 <= v < 64
        assert image[int(v), int(u), 3] == 255  # the head joint is inside the head: never background


def test_portraits_are_square_and_hold_the_whole_head(takes):
    from shared.rigs.open_rig import load_open_rig

    out, _, head = takes
    meta = json.loads((out / "portraits.json").read_text())
    motion = np.load(out / "motion.npz")
    phenotype = dict(zip(motion["phenotype_names"], motion["phenotype"], strict=True))
    frames = motion["poses"].shape[0]
    posed = load_open_rig().pose(
        motion["poses"].reshape(frames, -1, 3), face=motion["expressions"], phenotype=phenotype
    )
    assert len(meta["frames"]) == frames == 8
    for t, entry in enumerate(meta["frames"]):
        image = np.array(Image.open(out / entry["file_path"]))
        assert image.shape == (64, 64, 3)
        pixels = _pixels(meta["transform_matrix"], meta, posed.vertices[t, head])
        assert pixels.min() >= 0 and pixels.max() <= 64
        centre = pixels.mean(axis=0)
        assert np.abs(centre - 32).max() < 0.2 * 64  # face-centred
        u, v = _pixels(
            meta["transform_matrix"], meta, posed.joints[t, list(motion["joint_names"]).index("head")]
        )
        assert silhouette(image)[int(v), int(u)] == 255


def test_a_take_renders_identically_twice(takes):
    a, b, _ = takes
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for name in files:
        if name.suffix == ".png":
            assert np.array_equal(np.array(Image.open(a / name)), np.array(Image.open(b / name))), name
        elif name.suffix == ".npz":
            x, y = np.load(a / name), np.load(b / name)
            assert all(np.array_equal(x[k], y[k]) for k in x.files)
        elif name.suffix == ".json":
            assert (a / name).read_text() == (b / name).read_text()
