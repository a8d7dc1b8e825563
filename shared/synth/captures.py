"""Rendered captures of the open rig: multi-view frames with known cameras (NeRF transforms.json), per-frame
poses and face shapes, and square face-centred portraits, all driven by speech (shared.synth.gestures).

Per sequence, folder <out>/<id>/:
- images/f<frame>_v<view>.png: RGBA, alpha the body's silhouette, from `views` cameras evenly spaced in
  azimuth around the subject (view 0 in front) at `elevation` degrees, every `stride`-th frame;
- transforms.json: the NeRF-synthetic / instant-ngp layout: camera_angle_x/y, fl_x, fl_y, cx, cy, w, h, and
  per image its transform_matrix (camera to world, OpenGL axes: x right, y up, looking down -z), frame, time
  (0..1 over the take) and view; world coordinates are the open rig's (metres, +Z up, the subject faces -Y);
- motion.npz: every frame's poses [T, J*3] axis-angle, trans [T, 3], expressions [T, 52] ARKit, joints
  [T, J, 3] (world, metres), phenotype [6] with phenotype_names, fps;
- portraits/f<frame>.png, portraits.json, portrait.mp4 and speech.wav: a frontal close-up, the same camera for
  the whole take, framed on the head's bounds over all its frames (so square and face-centred), every frame,
  with the speech at 16 kHz: input for the video model.
Projection: a camera-space point (x, y, z) lands at u = cx + fl_x * x / -z, v = cy - fl_y * y / -z, pixel
(row i, column j) covering [j, j + 1) x [i, i + 1), row 0 at the top. Frames come from shared.render.raster's
MeshRenderer, whose camera is derived from a bounding box and a View; the matrices written are that camera's.
Shading is the preview's (untextured skin, one light): geometry and silhouettes, not photoreal images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.render.raster import BACKGROUND, MeshRenderer, View

# MeshRenderer derives its camera from (bounds, view, fov) with this function; the matrices written out must
# be exactly that camera, so they come from the same code rather than a copy of it.
from shared.render.raster import camera_matrices as renderer_camera
from shared.rigs.open_rig import PHENOTYPES, OpenRig
from shared.rigs.rotations import matrix_to_axis_angle
from shared.synth.bvh import BvhClip
from shared.synth.gestures import FPS, SAMPLE_RATE, GestureSequence

_POSE_CHUNK = 32
_PORTRAIT_MARGIN = 1.3  # the head's box is widened by this much so the shoulders' top and some air show
_BACKGROUND_RGB = np.round(np.asarray(BACKGROUND) * 255)


@dataclass(frozen=True)
class Camera:
    """A square pinhole camera: the one MeshRenderer(faces, bounds, view, size, fov_deg) renders with."""

    bounds: tuple[np.ndarray, np.ndarray]
    view: View
    size: int
    fov_deg: float
    camera_to_world: np.ndarray  # [4, 4], OpenGL axes

    @property
    def focal(self) -> float:
        """Pixels, equal for x and y."""
        return self.size / 2 / math.tan(math.radians(self.fov_deg) / 2)

    def intrinsics(self) -> np.ndarray:
        """[3, 3] K (camera looking down +z, y down: the OpenCV form of the same camera)."""
        f, c = self.focal, self.size / 2
        return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points [..., 3] -> pixel coordinates [..., 2] (u right, v down)."""
        rotation, eye = self.camera_to_world[:3, :3], self.camera_to_world[:3, 3]
        local = (np.asarray(points, dtype=np.float64) - eye) @ rotation  # world -> camera axes
        depth = -local[..., 2]
        u = self.size / 2 + self.focal * local[..., 0] / depth
        v = self.size / 2 - self.focal * local[..., 1] / depth
        return np.stack([u, v], axis=-1)

    def renderer(self, faces: np.ndarray) -> MeshRenderer:
        return MeshRenderer(faces, self.bounds, self.view, self.size, self.fov_deg)


def make_camera(bounds: tuple[np.ndarray, np.ndarray], view: View, size: int, fov_deg: float) -> Camera:
    """The camera MeshRenderer frames on bounds from view; its centre is where the projection's w and the
    image-plane coordinates vanish."""
    rotation, mvp = renderer_camera(bounds, view, fov_deg)
    rows = mvp[[0, 1, 3]]
    eye = np.linalg.solve(rows[:, :3], -rows[:, 3])
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3] = rotation.T  # columns: right, up, back (towards the viewer)
    camera_to_world[:3, 3] = eye
    low, high = (np.asarray(b, dtype=np.float64) for b in bounds)
    return Camera((low, high), view, size, fov_deg, camera_to_world)


def orbit_views(count: int, elevation_deg: float) -> list[View]:
    """count views evenly spaced in azimuth around the open rig (+Z up), view 0 in front (on -Y)."""
    out = []
    phi = math.radians(elevation_deg)
    for k in range(count):
        theta = 2 * math.pi * k / count
        front = (math.sin(theta) * math.cos(phi), -math.cos(theta) * math.cos(phi), math.sin(phi))
        up = (-math.sin(theta) * math.sin(phi), math.cos(theta) * math.sin(phi), math.cos(phi))
        out.append(View(up=up, front=front))
    return out


def cube_around(points: np.ndarray, margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A cube (equal sides) centred on the points' bounding box, holding it, sides scaled by margin."""
    low, high = points.reshape(-1, 3).min(axis=0), points.reshape(-1, 3).max(axis=0)
    centre, half = (low + high) / 2, float(np.max(high - low)) / 2 * margin
    return centre - half, centre + half


def silhouette(image: np.ndarray) -> np.ndarray:
    """[H, W] uint8 alpha: 255 where a pixel differs from the renderer's background."""
    return np.where(np.abs(image.astype(np.int16) - _BACKGROUND_RGB).max(axis=-1) > 2, 255, 0).astype(
        np.uint8
    )


def camera_json(camera: Camera) -> dict:
    angle = math.radians(camera.fov_deg)
    return {
        "camera_angle_x": angle,
        "camera_angle_y": angle,
        "fl_x": camera.focal,
        "fl_y": camera.focal,
        "cx": camera.size / 2,
        "cy": camera.size / 2,
        "w": camera.size,
        "h": camera.size,
    }


@dataclass(frozen=True)
class CaptureSettings:
    """What to render: camera count and placement, image sizes, which frames."""

    views: int = 8  # cameras around the subject
    elevation_deg: float = 10.0  # of every orbit camera above the subject's centre
    size: int = 256  # pixels, multi-view images (square)
    portrait_size: int = 256  # pixels, portraits (square)
    stride: int = 5  # multi-view images of every stride-th frame (portraits: every frame)
    fov_deg: float = 30.0
    max_frames: int | None = None  # cut the take to this many frames


def render_sequence(
    rig: OpenRig,
    head_vertices: np.ndarray,
    sequence: GestureSequence,
    out: Path,
    settings: CaptureSettings | None = None,
) -> dict:
    """Write one sequence's captures into out (see the module docstring); returns a summary record.

    head_vertices: indices of the head in the open rig's mesh (FaceRig.vertex_ids).
    """
    from PIL import Image

    from shared.media import encode_wav
    from shared.render.video import encode_mp4

    cfg = settings or CaptureSettings()
    frames = sequence.frames if cfg.max_frames is None else min(sequence.frames, cfg.max_frames)
    poses = matrix_to_axis_angle(sequence.rotations[:frames]).astype(np.float32)
    face = sequence.expressions[:frames]
    phenotype = dict(zip(PHENOTYPES, map(float, sequence.phenotype), strict=True))
    posed = [
        rig.pose(poses[i : i + _POSE_CHUNK], face=face[i : i + _POSE_CHUNK], phenotype=phenotype)
        for i in range(0, frames, _POSE_CHUNK)
    ]
    vertices = np.concatenate([p.vertices for p in posed])
    joints = np.concatenate([p.joints for p in posed])
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "portraits").mkdir(parents=True, exist_ok=True)

    sampled = list(range(0, frames, cfg.stride))
    body = cube_around(vertices[sampled], margin=1.05)
    views = orbit_views(cfg.views, cfg.elevation_deg)
    cameras = [make_camera(body, view, cfg.size, cfg.fov_deg) for view in views]
    images = []
    for v, camera in enumerate(cameras):
        with camera.renderer(rig.faces) as renderer:
            for t in sampled:
                rgb = renderer.render(vertices[t])
                name = f"images/f{t:04d}_v{v:02d}.png"
                Image.fromarray(np.dstack([rgb, silhouette(rgb)])).save(out / name)
                images.append(
                    {
                        "file_path": name,
                        "transform_matrix": camera.camera_to_world.tolist(),
                        "frame": t,
                        "time": t / max(frames - 1, 1),
                        "view": v,
                    }
                )
    transforms = {**camera_json(cameras[0]), "fps": FPS, "frames": images}
    (out / "transforms.json").write_text(json.dumps(transforms, indent=1), encoding="utf-8")

    head = vertices[:, head_vertices]
    low, high = head.reshape(-1, 3).min(axis=0), head.reshape(-1, 3).max(axis=0)
    centre, half = (low + high) / 2, (high - low) / 2 * _PORTRAIT_MARGIN
    portrait = make_camera((centre - half, centre + half), views[0], cfg.portrait_size, cfg.fov_deg)
    with portrait.renderer(rig.faces) as renderer:
        crops = [renderer.render(vertices[t]) for t in range(frames)]
    for t, crop in enumerate(crops):
        Image.fromarray(crop).save(out / "portraits" / f"f{t:04d}.png")
    waveform = sequence.waveform[: round(frames / FPS * SAMPLE_RATE)]
    (out / "speech.wav").write_bytes(encode_wav(waveform, SAMPLE_RATE))
    (out / "portrait.mp4").write_bytes(encode_mp4(crops, FPS, (waveform, SAMPLE_RATE)))
    portraits = {
        **camera_json(portrait),
        "transform_matrix": portrait.camera_to_world.tolist(),
        "fps": FPS,
        "frames": [
            {"file_path": f"portraits/f{t:04d}.png", "frame": t, "time": t / FPS} for t in range(frames)
        ],
    }
    (out / "portraits.json").write_text(json.dumps(portraits, indent=1), encoding="utf-8")
    np.savez_compressed(
        out / "motion.npz",
        poses=poses.reshape(frames, -1),
        trans=np.zeros((frames, 3), np.float32),
        expressions=face.astype(np.float32),
        joints=joints.astype(np.float32),
        joint_names=np.array(rig.joint_names),
        phenotype=sequence.phenotype.astype(np.float32),
        phenotype_names=np.array(PHENOTYPES),
        fps=np.array(FPS),
    )
    return {
        "id": sequence.id,
        "voice": sequence.voice,
        "text": sequence.text,
        "frames": frames,
        "images": len(images),
    }


def generate_captures(
    out: Path | str,
    n: int,
    seed: int,
    voices: Sequence[str] | None = None,
    settings: CaptureSettings | None = None,
    clips: Mapping[str, BvhClip] | None = None,
) -> Path:
    """n takes, each one voice (drawn from voices, default every installed English voice) saying one
    sentence with gestures; returns captures.jsonl. clips: gesture material (default load_bvh_clips())."""
    from shared import voices as catalogue
    from shared.rigs.open_rig import load_face_rig, load_open_rig
    from shared.synth.gestures import build_library, load_bvh_clips, make_sequence
    from shared.synth.texts import SENTENCES

    english = [v.id for v in catalogue.available_voices().values() if v.language.startswith("en")]
    pool = list(voices or english)
    if not pool:
        raise catalogue.UnknownVoice("no English voice is installed (apt-get install flite or espeak-ng)")
    rig = load_open_rig()
    library = build_library(clips if clips is not None else load_bvh_clips(), rig.skeleton())
    head = load_face_rig().vertex_ids
    out = Path(out)
    records = []
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        voice = pool[int(rng.integers(len(pool)))]
        text = SENTENCES[int(rng.integers(len(SENTENCES)))]
        sequence = make_sequence(library, f"cap-{index:04d}", text, voice, seed)
        records.append(render_sequence(rig, head, sequence, out / sequence.id, settings))
    manifest = out / "captures.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return manifest
