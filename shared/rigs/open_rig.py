"""The open rig: anny 0.6.2 (NAVER, Apache-2.0; MakeHuman assets CC0) posed by joints, phenotype and ARKit.

anny's frame: metres, +Z up, the body faces -Y, +X is the subject's left. Building anny parses MakeHuman's
target files (40-100 s on one core) and anny caches the result on disk (0.9 GB written, of which later
loads read 69 MB; see `RigSettings.anny_cache_dir`), so later builds take about a second. Nothing is
downloaded. `python -m shared.rigs.open_rig` fills both caches, e.g. in an image build step.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shared.rigs.arkit import ARKIT_SHAPES
from shared.rigs.rotations import axis_angle_to_matrix
from shared.rigs.settings import RigSettings, rig_settings

PHENOTYPES: tuple[str, ...] = ("gender", "age", "muscle", "weight", "height", "proportions")
# Face-rig vertex selection: bones whose skinning makes a vertex "head"; shapes marking lips and upper face.
_HEAD_BONES = ("head", "eye.L", "eye.R", "neck01", "neck02", "neck03")
_LIP_SHAPES = ("mouthFunnel", "mouthPucker", "mouthRollLower", "mouthRollUpper")
_UPPER_SHAPES = tuple(n for n in ARKIT_SHAPES if n.startswith(("brow", "eyeBlink", "eyeSquint", "eyeWide")))
_FACE_RIG_VERSION = 3
_FACE_RIG_KEYS = ("template", "basis", "faces", "lip", "upper", "vertex_ids")


@dataclass(frozen=True)
class Skeleton:
    """Joints are anny's bones, named by their head; parents[0] == -1 (the root)."""

    names: tuple[str, ...]
    parents: np.ndarray  # [J] int64
    rest_joints: np.ndarray  # [J, 3] metres

    def index(self, name: str) -> int:
        return self.names.index(name)


@dataclass(frozen=True)
class PosedMesh:
    vertices: np.ndarray  # [B, V, 3] float32, metres
    joints: np.ndarray  # [B, J, 3] float32, posed joint (bone head) positions


@dataclass(frozen=True)
class FaceRig:
    """Linear face rig: the head of the open rig at rest, plus 52 ARKit shapes (exact for the rest pose).

    Saved as .npz with the keys face-vqvae's eval reads as a `--rig` (template, basis, lip, upper) plus faces.
    """

    template: np.ndarray  # [V, 3] float32
    basis: np.ndarray  # [52, V, 3] float32, displacement per unit weight, in ARKIT_SHAPES order
    faces: np.ndarray  # [F, 3] int32
    lip: np.ndarray  # [L] int64, vertices the lip shapes move (for lip-sync errors)
    upper: np.ndarray  # [U] int64, vertices the brow and eye shapes move (upper-face dynamics)
    vertex_ids: np.ndarray  # [V] int64, each vertex's index in the open rig's full mesh

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        """ARKit weights [T, 52] -> vertices [T, V, 3] (float32)."""
        weights = np.asarray(weights, dtype=np.float32)
        if weights.ndim != 2 or weights.shape[1] != len(ARKIT_SHAPES):
            raise ValueError(f"weights must be [T, {len(ARKIT_SHAPES)}], got {weights.shape}")
        return self.template + np.einsum("tk,kvc->tvc", weights, self.basis)

    def save(self, path: Path) -> None:
        """Write atomically, so readers in other processes never see half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with partial.open("wb") as f:
            np.savez(f, **{key: getattr(self, key) for key in _FACE_RIG_KEYS})
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> FaceRig:
        with np.load(path, allow_pickle=False) as npz:
            return cls(**{key: npz[key] for key in _FACE_RIG_KEYS})


class OpenRig:
    """Poses anny: per-joint rotations, root translation, 52 ARKit weights and 6 phenotype values."""

    def __init__(self, model: torch.nn.Module) -> None:
        self._model = model
        labels = list(model.facial_action_labels)
        if labels != list(ARKIT_SHAPES):
            raise ValueError(f"anny's facial actions are not the 52 ARKit shapes in order: {labels[:5]}...")
        self.joint_names: tuple[str, ...] = tuple(model.bone_labels)
        self.faces: np.ndarray = model.faces.numpy().astype(np.int32)

    @property
    def model(self) -> torch.nn.Module:
        """anny's own model (its texture coordinates and body-part segmentation)."""
        return self._model

    @property
    def shape_names(self) -> tuple[str, ...]:
        return ARKIT_SHAPES

    @property
    def phenotype_names(self) -> tuple[str, ...]:
        return PHENOTYPES

    def skeleton(self, phenotype: Mapping[str, float] | None = None) -> Skeleton:
        """Joint names, parents and rest joint positions (zero rotations) for a phenotype."""
        return Skeleton(
            names=self.joint_names,
            parents=np.asarray(self._model.bone_parents, dtype=np.int64),
            rest_joints=self.pose(phenotype=phenotype).joints[0],
        )

    def rest_vertices(self, phenotype: Mapping[str, float] | None = None) -> np.ndarray:
        """[V, 3] float32: the neutral face in the rest pose (zero rotations)."""
        return self.pose(phenotype=phenotype).vertices[0]

    def pose(
        self,
        rotations: np.ndarray | Mapping[str, np.ndarray] | None = None,
        *,
        translation: np.ndarray | None = None,
        face: np.ndarray | None = None,
        phenotype: Mapping[str, float] | None = None,
    ) -> PosedMesh:
        """Posed mesh for B frames.

        rotations: [B, J, 3] axis-angle (radians) in `joint_names` order, or {joint name: [B, 3] or [3]};
            each rotates its joint's subtree about the joint, in world-aligned axes (the SMPL convention).
            Zero everywhere gives the rest pose: anny's reference A-pose, which is the same for every
            phenotype (it differs from anny's bind mesh by a few millimetres).
        translation: [B, 3] root displacement from its rest position (metres).
        face: [B, 52] ARKit weights in ARKIT_SHAPES order, 0..1.
        phenotype: {name: 0..1} for PHENOTYPES, 0.5 (the average) for any left out.
        """
        deltas = self._rotation_deltas(rotations)
        face_t = None if face is None else torch.as_tensor(np.asarray(face, dtype=np.float64)).reshape(-1, 52)
        batch = max(deltas.shape[0], 1 if face_t is None else face_t.shape[0])
        out = self._forward(deltas.expand(batch, -1, -1, -1), face_t, phenotype, batch)
        # anny's 'local-ref' puts the root at the origin; put it where the bind mesh has it, then displace it.
        offset = out["rest_bone_heads"][:, :1, :]
        if translation is not None:
            offset = offset + torch.as_tensor(np.asarray(translation, dtype=np.float64)).reshape(-1, 1, 3)
        vertices = out["vertices"] + offset
        joints = out["bone_poses"][..., :3, 3] + offset
        return PosedMesh(vertices.numpy().astype(np.float32), joints.numpy().astype(np.float32))

    def face_rig(self, phenotype: Mapping[str, float] | None = None) -> FaceRig:
        """The head vertices of the rest mesh and the 52 shapes on them (see FaceRig)."""
        model = self._model
        # Skinning is linear in the rest vertices, so a unit weight's displacement in the rest pose is exact
        # for any weights: one batch of 53 frames gives the template and all 52 shapes.
        posed = self.pose(
            face=np.vstack([np.zeros(len(ARKIT_SHAPES)), np.eye(len(ARKIT_SHAPES))]), phenotype=phenotype
        )
        rest, shapes = posed.vertices[0], posed.vertices[1:] - posed.vertices[0]
        weights, indices = model.vertex_bone_weights.numpy(), model.vertex_bone_indices.numpy()
        head_bones = [self.joint_names.index(name) for name in _HEAD_BONES]
        head_weight = (weights * np.isin(indices, head_bones)).sum(axis=1)
        moved = np.linalg.norm(shapes, axis=2)  # [52, V]
        moving = moved.max(axis=0) > 1e-5
        # Cut the neck level with the lowest vertex a shape moves: a clean edge under the jaw.
        keep = ((head_weight > 0.5) & (rest[:, 2] >= rest[moving, 2].min())) | moving
        faces = self.faces[keep[self.faces].all(axis=1)]
        used = np.unique(faces)
        remap = np.full(rest.shape[0], -1, dtype=np.int64)
        remap[used] = np.arange(used.size)

        def marked(names: tuple[str, ...], fraction: float) -> np.ndarray:
            rows = moved[[ARKIT_SHAPES.index(n) for n in names]]
            hit = (rows > fraction * rows.max(axis=1, keepdims=True)).any(axis=0)
            return remap[used[hit[used]]]

        return FaceRig(
            template=rest[used],
            basis=shapes[:, used].astype(np.float32),
            faces=remap[faces].astype(np.int32),
            lip=marked(_LIP_SHAPES, 0.25),
            upper=marked(_UPPER_SHAPES, 0.1),
            vertex_ids=used,
        )

    def _rotation_deltas(self, rotations: np.ndarray | Mapping[str, np.ndarray] | None) -> torch.Tensor:
        """[B, J, 4, 4] delta transforms, identity where no rotation is given."""
        count = len(self.joint_names)
        if rotations is None:
            axis_angle = np.zeros((1, count, 3))
        elif isinstance(rotations, Mapping):
            unknown = set(rotations) - set(self.joint_names)
            if unknown:
                raise ValueError(f"unknown joints {sorted(unknown)}; see OpenRig.joint_names")
            rows = {
                name: np.asarray(value, dtype=np.float64).reshape(-1, 3) for name, value in rotations.items()
            }
            batch = max((r.shape[0] for r in rows.values()), default=1)
            axis_angle = np.zeros((batch, count, 3))
            for name, value in rows.items():
                axis_angle[:, self.joint_names.index(name)] = value
        else:
            axis_angle = np.asarray(rotations, dtype=np.float64)
            if axis_angle.ndim != 3 or axis_angle.shape[1:] != (count, 3):
                raise ValueError(f"rotations must be [B, {count}, 3], got {axis_angle.shape}")
        deltas = torch.eye(4, dtype=torch.float64).repeat(axis_angle.shape[0], count, 1, 1)
        deltas[..., :3, :3] = axis_angle_to_matrix(torch.from_numpy(axis_angle))
        return deltas

    def _forward(
        self,
        deltas: torch.Tensor | None,
        face: torch.Tensor | None,
        phenotype: Mapping[str, float] | None,
        batch: int,
    ) -> dict[str, torch.Tensor]:
        unknown = set(phenotype or {}) - set(PHENOTYPES)
        if unknown:
            raise ValueError(f"unknown phenotype values {sorted(unknown)}; known: {', '.join(PHENOTYPES)}")
        with torch.no_grad():
            out = self._model(
                pose_parameters=deltas,
                phenotype_kwargs={name: float(value) for name, value in (phenotype or {}).items()},
                facial_actions=face,
            )
        # anny broadcasts a batch-1 rest model over the poses; give every output the same batch.
        return {key: value.expand(batch, *value.shape[1:]) for key, value in out.items()}


@functools.lru_cache(maxsize=2)
def _build(anny_cache_dir: Path | None) -> OpenRig:
    import anny
    import anny.paths

    if anny_cache_dir is not None:
        anny.paths.set_anny_cache_path(anny_cache_dir)
    # Pure-torch skinning: anny's default (warp) compiles a kernel per process and dtype on first use.
    return OpenRig(anny.Anny(facial_actions="all", skinning_method="lbs"))


def load_open_rig(settings: RigSettings | None = None) -> OpenRig:
    """The open rig, built once per process (anny's own disk cache makes later processes fast)."""
    settings = settings or rig_settings()
    return _build(settings.anny_cache_dir)


@functools.lru_cache(maxsize=8)
def _face_rig(
    cache_dir: Path, anny_cache_dir: Path | None, phenotype: tuple[tuple[str, float], ...]
) -> FaceRig:
    import anny

    key = hashlib.sha256(repr((_FACE_RIG_VERSION, anny.__version__, phenotype)).encode()).hexdigest()[:16]
    path = cache_dir / f"face_rig_{key}.npz"
    if path.is_file():
        return FaceRig.load(path)
    rig = _build(anny_cache_dir).face_rig(dict(phenotype))
    rig.save(path)
    return rig


def load_face_rig(
    settings: RigSettings | None = None, phenotype: Mapping[str, float] | None = None
) -> FaceRig:
    """The face-only rig (a few MB, cached under settings.cache_dir): fast face previews without anny's
    full model once built."""
    settings = settings or rig_settings()
    return _face_rig(settings.cache_dir, settings.anny_cache_dir, tuple(sorted((phenotype or {}).items())))


if __name__ == "__main__":
    face = load_face_rig()
    print(f"open rig cached; face rig: {face.template.shape[0]} vertices, {face.faces.shape[0]} triangles")
