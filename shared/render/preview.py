"""Motion previews: open-rig face/body or FLAME meshes rendered on the CPU, muxed with speech into an mp4.

Face previews paint the open rig's face (shared.render.face_look) and can compare several clips side by side.

Every function returns H.264/AAC mp4 bytes. With audio, the clip has round(audio seconds * fps) frames:
motion that is shorter holds its last frame, longer motion is cut, so the video ends with the speech.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from shared.render.face_look import paint_face
from shared.render.raster import ANNY_VIEW, FLAME_VIEW, MeshRenderer, View
from shared.render.video import encode_mp4
from shared.rigs.arkit import ARKIT_SHAPES
from shared.rigs.flame import FlameModel
from shared.rigs.open_rig import FaceRig, OpenRig, load_face_rig, load_open_rig

PREVIEW_SIZE = 512  # face previews: large enough to read lips, teeth, irises and brows
MAX_PANELS = 8  # side-by-side panels in one compare video


def render_vertices(
    vertices: np.ndarray,
    faces: np.ndarray,
    audio_wav: bytes | None = None,
    fps: int = 25,
    size: int = 256,
    view: View = ANNY_VIEW,
) -> bytes:
    """vertices [T, V, 3] (any units), faces [F, 3] -> mp4; the camera frames the whole clip's bounds."""
    vertices = np.asarray(vertices, dtype=np.float32)
    if vertices.ndim != 3 or vertices.shape[2] != 3 or vertices.shape[0] == 0:
        raise ValueError(f"vertices must be [T, V, 3] with T >= 1, got {vertices.shape}")
    audio = _decode(audio_wav)
    if audio is not None:
        vertices = fit_frames(vertices, frame_count(audio[0].shape[0] / audio[1], fps))
    bounds = (vertices.min(axis=(0, 1)), vertices.max(axis=(0, 1)))
    with MeshRenderer(faces, bounds, view, _even(size)) as renderer:
        return encode_mp4((renderer.render(frame) for frame in vertices), fps, audio)


def render_face_motion(
    curves: np.ndarray,
    audio_wav: bytes | None = None,
    fps: int = 25,
    size: int = PREVIEW_SIZE,
    rig: FaceRig | None = None,
) -> bytes:
    """ARKit weights [T, 52] at fps on the open rig's painted face (load_face_rig() unless a rig is given)
    -> mp4 of size x size pixels."""
    return render_face_compare([curves], audio_wav, fps, size, rig=rig)


def render_face_compare(
    clips: Sequence[np.ndarray],
    audio_wav: bytes | None = None,
    fps: int = 25,
    size: int = PREVIEW_SIZE,
    labels: Sequence[str] = (),
    rig: FaceRig | None = None,
) -> bytes:
    """Several ARKit clips [T_i, 52] side by side in one mp4 (e.g. one speech under several emotions, or
    several samples of one clip), each panel size x size pixels with its label, if given, in the corner.

    The clips play in step: each is cut or holds its last frame to the audio's length, or to the longest
    clip's without audio.
    """
    clips = [np.asarray(c, dtype=np.float32) for c in clips]
    if not 1 <= len(clips) <= MAX_PANELS:
        raise ValueError(f"between 1 and {MAX_PANELS} clips, got {len(clips)}")
    for curves in clips:
        if curves.ndim != 2 or curves.shape[1] != len(ARKIT_SHAPES) or curves.shape[0] == 0:
            raise ValueError(f"curves must be [T, {len(ARKIT_SHAPES)}] with T >= 1, got {curves.shape}")
    if labels and len(labels) != len(clips):
        raise ValueError(f"{len(labels)} labels for {len(clips)} clips")
    face = paint_face(rig or load_face_rig())
    audio = _decode(audio_wav)
    count = frame_count(audio[0].shape[0] / audio[1], fps) if audio else max(len(c) for c in clips)
    clips = [fit_frames(c, count) for c in clips]
    size = _even(size)
    captions = [caption(text, size) for text in labels] if labels else None

    def frames(renderer: MeshRenderer) -> Iterator[np.ndarray]:
        for t in range(count):
            panels = [renderer.render(face(c[t : t + 1])[0]) for c in clips]
            if captions is not None:
                panels = [overlay(panel, label) for panel, label in zip(panels, captions, strict=True)]
            yield np.concatenate(panels, axis=1)

    with MeshRenderer(face.faces, face.bounds, ANNY_VIEW, size, surface=face.surface) as renderer:
        return encode_mp4(frames(renderer), fps, audio)


def caption(text: str, size: int) -> np.ndarray:
    """[h, w, 4] uint8 RGBA: the text in white on a translucent dark box, for a panel's top-left corner."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(10, size // 20))
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, size // 64)
    image = Image.new("RGBA", (right + 2 * pad, bottom + 2 * pad), (0, 0, 0, 150))
    ImageDraw.Draw(image).text((pad, pad), text, font=font, fill=(255, 255, 255, 255))
    return np.asarray(image)[:size, :size]


def overlay(panel: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Alpha-blend an RGBA label onto the panel's top-left corner."""
    h, w = label.shape[:2]
    alpha = label[..., 3:4].astype(np.float32) / 255
    out = panel.copy()
    out[:h, :w] = (alpha * label[..., :3] + (1 - alpha) * panel[:h, :w]).astype(np.uint8)
    return out


def render_body_motion(
    rotations: np.ndarray,
    face: np.ndarray | None = None,
    audio_wav: bytes | None = None,
    fps: int = 25,
    size: int = 256,
    rig: OpenRig | None = None,
) -> bytes:
    """Open-rig joint rotations [T, J, 3] (and ARKit weights [T, 52]) -> full-body mp4."""
    rig = rig or load_open_rig()
    rotations = np.asarray(rotations, dtype=np.float32)
    frames = rotations.shape[0]
    face = np.zeros((frames, len(ARKIT_SHAPES)), np.float32) if face is None else np.asarray(face, np.float32)
    # Pose in chunks: anny's skinning holds per-vertex transforms for the whole batch.
    chunks = [rig.pose(rotations[i : i + 64], face=face[i : i + 64]).vertices for i in range(0, frames, 64)]
    return render_vertices(np.concatenate(chunks), rig.faces, audio_wav, fps, size, ANNY_VIEW)


def render_flame_motion(
    motion: np.ndarray, flame: FlameModel, audio_wav: bytes | None = None, fps: int = 25, size: int = 256
) -> bytes:
    """ProbTalk3D FLAME motion [T, 53] (raw units) on the user's FLAME model -> mp4."""
    return render_vertices(flame.motion53_vertices(motion), flame.faces, audio_wav, fps, size, FLAME_VIEW)


def frame_count(duration_s: float, fps: int) -> int:
    """Frames of a clip as long as the audio (to the nearest frame, at least one)."""
    return max(1, round(duration_s * fps))


def fit_frames(array: np.ndarray, count: int) -> np.ndarray:
    """[T, ...] -> [count, ...]: cut, or hold the last frame."""
    if array.shape[0] >= count:
        return array[:count]
    pad = np.repeat(array[-1:], count - array.shape[0], axis=0)
    return np.concatenate([array, pad])


def _decode(audio_wav: bytes | None) -> tuple[np.ndarray, int] | None:
    if audio_wav is None:
        return None
    from shared.media import load_audio

    return load_audio(audio_wav)


def _even(size: int) -> int:
    """H.264 in yuv420p needs even dimensions."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    return size + size % 2
