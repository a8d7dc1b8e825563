"""Motion previews: open-rig face/body or FLAME meshes rendered on the CPU, muxed with speech into an mp4.

Face previews paint the open rig's face (shared.render.face_look) and can compare several clips side by side;
body previews put that painted face on the whole figure (shared.render.body_look), framed on the upper body.

Every function returns H.264/AAC mp4 bytes. With audio, the clip has round(audio seconds * fps) frames:
motion that is shorter holds its last frame, longer motion is cut, so the video ends with the speech.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from shared.render.body_look import PaintedBody, framing, paint_body
from shared.render.face_look import paint_face
from shared.render.raster import ANNY_VIEW, FLAME_VIEW, MeshRenderer, View
from shared.render.video import encode_mp4
from shared.rigs.arkit import ARKIT_SHAPES
from shared.rigs.flame import FlameModel
from shared.rigs.open_rig import FaceRig, OpenRig, load_face_rig, load_open_rig

PREVIEW_SIZE = 512  # face previews: large enough to read lips, teeth, irises and brows
MAX_PANELS = 8  # side-by-side panels in one compare video
POSE_CHUNK = 64  # frames the open rig poses at once


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
    fps: int = 30,
    size: int = PREVIEW_SIZE,
    rig: OpenRig | None = None,
    body: PaintedBody | None = None,
) -> bytes:
    """Open-rig joint rotations [T, J, 3] (axis-angle, `OpenRig.pose`'s) with ARKit weights [T, 52] on the
    same figure -> mp4 of size x size pixels: the painted face on the body, the camera fixed on the bounds
    of the upper body over the whole clip, so both hands and the face stay in view (legs may be cut off).

    body: paint_body(rig, load_face_rig()) unless given (the predictor builds it once).
    """
    rig = rig or load_open_rig()
    body = body or paint_body(rig, load_face_rig())
    rotations = np.asarray(rotations, dtype=np.float32)
    joints = len(rig.joint_names)
    if rotations.ndim != 3 or rotations.shape[1:] != (joints, 3) or rotations.shape[0] == 0:
        raise ValueError(f"rotations must be [T, {joints}, 3] with T >= 1, got {rotations.shape}")
    face = np.zeros((len(rotations), len(ARKIT_SHAPES)), np.float32) if face is None else face
    face = np.asarray(face, dtype=np.float32)
    if face.ndim != 2 or face.shape[1] != len(ARKIT_SHAPES) or face.shape[0] == 0:
        raise ValueError(f"face must be [T, {len(ARKIT_SHAPES)}] with T >= 1, got {face.shape}")
    audio = _decode(audio_wav)
    count = frame_count(audio[0].shape[0] / audio[1], fps) if audio else max(len(rotations), len(face))
    rotations, face = fit_frames(rotations, count), fit_frames(face, count)

    def posed() -> Iterator[np.ndarray]:
        # In chunks: anny's skinning holds per-vertex transforms for the whole batch.
        for i in range(0, count, POSE_CHUNK):
            chunk = slice(i, i + POSE_CHUNK)
            yield from body.vertices(rig.pose(rotations[chunk], face=face[chunk]).vertices, face[chunk])

    # Posed twice, once for the framing and once to draw: keeping a long clip's meshes would take
    # hundreds of MB (13.8 k vertices a frame), posing costs about a third of drawing.
    bounds = framing(posed(), body)
    with MeshRenderer(body.faces, bounds, ANNY_VIEW, _even(size), surface=body.surface) as renderer:
        return encode_mp4((renderer.render(vertices) for vertices in posed()), fps, audio)


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
