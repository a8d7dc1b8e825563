"""SMPL-X body adapter: loads the user's own licensed SMPL-X file and poses its 55 joints (Pavlakos 2019).

Orate ships no SMPL-X data. Point `RigSettings.smplx_model` (env ORATE_RIGS__SMPLX_MODEL) at
`SMPLX_NEUTRAL.npz` (or the .pkl) from https://smpl-x.is.tue.mpg.de. Poses are axis-angle per joint in the
parent's frame; motion models often use the 6D form instead (`pose_to_rot6d` / `rot6d_to_pose`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shared.rigs import model_files as mf
from shared.rigs.rotations import axis_angle_to_rot6d, rot6d_to_axis_angle
from shared.rigs.settings import RigSettings, rig_settings

_HAND = ("index", "middle", "pinky", "ring", "thumb")
SMPLX_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    *(f"left_{finger}{k}" for finger in _HAND for k in (1, 2, 3)),
    *(f"right_{finger}{k}" for finger in _HAND for k in (1, 2, 3)),
)  # fmt: skip
# The kinematic tree of the released SMPL-X models (kintree_table[0]); files are checked against it.
SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)  # fmt: skip
# shapedirs' last axis: identity betas then expression coefficients (SMPL-X 1.1: 300 + 100, 1.0: 10 + 10).
_SHAPE_SPLITS = {400: (300, 100), 20: (10, 10)}


@dataclass(frozen=True)
class SmplxModel:
    """SMPL-X arrays in its own frame: metres, +Y up, +Z the body's front, +X the subject's left."""

    v_template: np.ndarray  # [10475, 3]
    shapedirs: np.ndarray  # [V, 3, betas]
    exprdirs: np.ndarray  # [V, 3, expression]
    posedirs: np.ndarray  # [V, 3, 486]
    j_regressor: np.ndarray  # [55, V]
    parents: np.ndarray  # [55]
    weights: np.ndarray  # [V, 55]
    faces: np.ndarray  # [F, 3] int32

    @classmethod
    def load(cls, path: Path) -> SmplxModel:
        """Read and check an SMPL-X file; ModelFileError names the file and the offending array."""
        path = Path(path)
        arrays = mf.load_model_arrays(path)
        joints = len(SMPLX_JOINTS)
        v_template = mf.require(arrays, "v_template", (None, 3), path)
        vertex_count = v_template.shape[0]
        dirs = mf.require(arrays, "shapedirs", (vertex_count, 3, None), path)
        if dirs.shape[2] not in _SHAPE_SPLITS:
            raise mf.ModelFileError(f"{path}: shapedirs has {dirs.shape[2]} directions, expected 400 (or 20)")
        betas, _ = _SHAPE_SPLITS[dirs.shape[2]]
        parents = mf.check_parents(mf.require(arrays, "kintree_table", (2, joints), path, np.int64), path)
        if tuple(parents.tolist()) != SMPLX_PARENTS:
            raise mf.ModelFileError(f"{path}: kintree_table is not SMPL-X's 55-joint tree")
        return cls(
            v_template=v_template,
            shapedirs=dirs[:, :, :betas],
            exprdirs=dirs[:, :, betas:],
            posedirs=mf.require(arrays, "posedirs", (vertex_count, 3, 9 * (joints - 1)), path),
            j_regressor=mf.require(arrays, "J_regressor", (joints, vertex_count), path),
            parents=parents,
            weights=mf.require(arrays, "weights", (vertex_count, joints), path),
            faces=mf.require(arrays, "f", (None, 3), path, np.int32),
        )

    def forward(
        self,
        pose: np.ndarray,
        *,
        betas: np.ndarray | None = None,
        expression: np.ndarray | None = None,
        translation: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """pose [T, 55, 3] axis-angle (radians; joint 0 is the global orientation) -> (vertices [T, V, 3],
        joints [T, 55, 3]) as float32. betas [<=B] or [T, <=B], expression [T, <=E], translation [T, 3]."""
        pose_t = torch.from_numpy(np.asarray(pose, dtype=np.float64))
        if pose_t.ndim != 3 or pose_t.shape[1:] != (len(SMPLX_JOINTS), 3):
            raise ValueError(f"pose must be [T, 55, 3], got {tuple(pose_t.shape)}")
        batch = pose_t.shape[0]
        v_shaped = mf.blend(
            self.v_template,
            (self.shapedirs, mf.batch_of(betas, self.shapedirs.shape[2], batch, "betas")),
            (self.exprdirs, mf.batch_of(expression, self.exprdirs.shape[2], batch, "expression")),
        )
        vertices, joints = mf.skin(
            v_shaped,
            pose_t,
            torch.from_numpy(self.j_regressor),
            self.parents,
            torch.from_numpy(self.weights),
            torch.from_numpy(self.posedirs),
        )
        offset = mf.batch_of(translation, 3, batch, "translation")[:, None, :]
        return (vertices + offset).numpy().astype(np.float32), (joints + offset).numpy().astype(np.float32)


def pose_to_rot6d(pose: np.ndarray) -> np.ndarray:
    """[T, 55, 3] axis-angle -> [T, 55 * 6] (the layout SMPL-X motion models train on)."""
    pose = np.asarray(pose)
    return axis_angle_to_rot6d(pose).reshape(pose.shape[0], -1)


def rot6d_to_pose(rot6d: np.ndarray) -> np.ndarray:
    """[T, 55 * 6] (or [T, 55, 6]) -> [T, 55, 3] axis-angle."""
    rot6d = np.asarray(rot6d)
    return rot6d_to_axis_angle(rot6d.reshape(rot6d.shape[0], len(SMPLX_JOINTS), 6))


def load_smplx(settings: RigSettings | None = None) -> SmplxModel | None:
    """The configured SMPL-X model, or None when no SMPL-X file is configured."""
    settings = settings or rig_settings()
    return None if settings.smplx_model is None else SmplxModel.load(settings.smplx_model)
