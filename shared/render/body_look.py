"""How previews paint the open rig's whole body: plain skin with the painted face (shared.render.face_look)
on its head, so one figure shows the gesture and the expression.

The face rig's vertices are some of the full mesh's (FaceRig.vertex_ids), at the same rest positions, so the
face's colours, materials and decals carry over vertex for vertex. The teeth are geometry the rig lacks:
anny's skinning cannot pose them, so they follow the skull, the head vertices no ARKit shape moves, by the
rigid motion that best fits it in each frame (Kabsch), after the jaw shapes have moved the lower row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from shared.render.face_look import EYE, FACE_SKIN, paint_face
from shared.render.raster import SKIN, SKIN_GLOSS, Surface
from shared.rigs.open_rig import FaceRig, OpenRig

# The bone whose subtree is the upper body (spine, arms, hands, neck, head); the framing follows it.
UPPER_BODY_ROOT = "spine05"


@dataclass(frozen=True)
class PaintedBody:
    """The open rig's full mesh with the painted face and teeth: what render_body_motion draws."""

    faces: np.ndarray  # [F + teeth, 3] int32: the full mesh's triangles, then the teeth's
    surface: Surface  # [V + teeth] per vertex
    upper_body: np.ndarray  # [V] bool: vertices the upper body's bones carry (the camera frames them)
    skull: np.ndarray  # [K] int64: full-mesh vertices the head carries rigidly and no shape moves
    skull_rest: np.ndarray  # [K, 3] float64, metres
    teeth_rest: np.ndarray  # [N, 3] float32, metres
    teeth_basis: np.ndarray  # [52, N, 3] float32: the teeth's displacement per unit ARKit weight

    def vertices(self, posed: np.ndarray, face: np.ndarray) -> np.ndarray:
        """The full mesh posed [T, V, 3] with its ARKit weights [T, 52] -> [T, V + teeth, 3] float32."""
        teeth = self.teeth_rest + np.einsum("tk,kvc->tvc", np.asarray(face, np.float32), self.teeth_basis)
        rotation, shift = rigid_fit(self.skull_rest, posed[:, self.skull])
        moved = np.einsum("tij,tvj->tvi", rotation, teeth) + shift[:, None]
        return np.concatenate([posed, moved.astype(np.float32)], axis=1)


def paint_body(rig: OpenRig, face_rig: FaceRig) -> PaintedBody:
    """The painted body of the open rig; face_rig must be the rig's own (load_face_rig(), same phenotype)."""
    face = paint_face(face_rig)
    rest = rig.rest_vertices()
    ids, count = face_rig.vertex_ids, len(face_rig.template)
    if not np.allclose(rest[ids], face_rig.template, atol=1e-5):
        raise ValueError("the face rig is not this open rig's head at rest (another phenotype?)")
    albedo = np.tile(np.asarray(SKIN, np.float32), (len(rest), 1))
    gloss = np.full(len(rest), SKIN_GLOSS, np.float32)
    material = np.full(len(rest), FACE_SKIN, np.int32)
    albedo[ids], gloss[ids], material[ids] = (
        face.surface.albedo[:count],
        face.surface.gloss[:count],
        face.surface.material[:count],
    )
    teeth = slice(count, None)
    surface = Surface(
        albedo=np.vstack([albedo, face.surface.albedo[teeth]]),
        gloss=np.concatenate([gloss, face.surface.gloss[teeth]]),
        material=np.concatenate([material, face.surface.material[teeth]]),
        rest=np.vstack([rest, face.surface.rest[teeth]]),
        decals=face.surface.decals,
    )
    teeth_faces = face.faces[len(face_rig.faces) :] - count + len(rest)
    # The skull: head vertices above the eyes that no shape moves (the brows' and lids' do not count).
    still = np.abs(face_rig.basis).max(axis=(0, 2)) == 0
    eye_z = face_rig.template[face.surface.material[:count] == EYE, 2].max()
    skull = ids[still & (face_rig.template[:, 2] > eye_z)]
    return PaintedBody(
        faces=np.vstack([rig.faces, teeth_faces]).astype(np.int32),
        surface=surface,
        upper_body=_carried_by(rig, UPPER_BODY_ROOT),
        skull=skull,
        skull_rest=rest[skull].astype(np.float64),
        teeth_rest=face.template[teeth],
        teeth_basis=face.basis[:, teeth],
    )


def framing(frames: Iterable[np.ndarray], body: PaintedBody) -> tuple[np.ndarray, np.ndarray]:
    """The bounds of the upper body over a clip's frames [V + teeth, 3]: wherever the hands and head go."""
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    for vertices in frames:
        upper = vertices[: len(body.upper_body)][body.upper_body]
        low, high = np.minimum(low, upper.min(axis=0)), np.maximum(high, upper.max(axis=0))
    return low, high


def rigid_fit(rest: np.ndarray, posed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotations [T, 3, 3] and shifts [T, 3] that best carry rest [K, 3] onto posed [T, K, 3] (Kabsch)."""
    posed = np.asarray(posed, np.float64)
    rest_centre, posed_centre = rest.mean(axis=0), posed.mean(axis=1)
    covariance = np.einsum("tki,kj->tij", posed - posed_centre[:, None], rest - rest_centre)
    u, _, vt = np.linalg.svd(covariance)
    # Flip the last axis where the best orthogonal fit is a reflection.
    sign = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= sign[:, None]
    rotation = u @ vt
    return rotation, posed_centre - np.einsum("tij,j->ti", rotation, rest_centre)


def _carried_by(rig: OpenRig, root: str) -> np.ndarray:
    """[V] bool: vertices whose skinning weights lie mostly on root's subtree of bones."""
    parents = np.asarray(rig.model.bone_parents)
    inside = np.zeros(len(parents), bool)
    inside[rig.joint_names.index(root)] = True
    for bone, parent in enumerate(parents):  # anny lists every bone after its parent
        inside[bone] |= parent >= 0 and inside[parent]
    weights = rig.model.vertex_bone_weights.numpy()
    bones = rig.model.vertex_bone_indices.numpy()
    return (weights * inside[bones]).sum(axis=1) > 0.5
