"""FLAME head model adapter: loads the user's own licensed FLAME file and poses it (Li et al. 2017).

Orate ships no FLAME data. Point `RigSettings.flame_model` (env ORATE_RIGS__FLAME_MODEL) at
`generic_model.pkl` / `flame2023.pkl` from https://flame.is.tue.mpg.de (or an .npz with the same keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shared.rigs import model_files as mf
from shared.rigs.settings import RigSettings, rig_settings

FLAME_JOINTS: tuple[str, ...] = ("global", "neck", "jaw", "left_eye", "right_eye")
FLAME_VERTICES = 5023
EXPRESSION_DIRS = 100
# ProbTalk3D's motion layout (MODELS.md 4.1): the first 50 expression coefficients, then jaw axis-angle.
MOTION53_EXPRESSIONS = 50


@dataclass(frozen=True)
class FlameModel:
    """FLAME arrays in its own frame: metres, +Y up, +Z out of the face, +X the subject's left."""

    v_template: np.ndarray  # [5023, 3]
    shapedirs: np.ndarray  # [5023, 3, S] identity (S = 300 in the released models)
    exprdirs: np.ndarray  # [5023, 3, 100]
    posedirs: np.ndarray  # [5023, 3, 36]
    j_regressor: np.ndarray  # [5, 5023]
    parents: np.ndarray  # [5], root -1
    weights: np.ndarray  # [5023, 5]
    faces: np.ndarray  # [9976, 3] int32
    arkit_expression_map: np.ndarray | None = None  # optional [52, 50], see shared.rigs.mappings

    @classmethod
    def load(cls, path: Path, arkit_map: Path | None = None) -> FlameModel:
        """Read and check a FLAME file; ModelFileError names the file and the offending array."""
        path = Path(path)
        arrays = mf.load_model_arrays(path)
        v_template = mf.require(arrays, "v_template", (FLAME_VERTICES, 3), path)
        dirs = mf.require(arrays, "shapedirs", (FLAME_VERTICES, 3, None), path)
        if dirs.shape[2] <= EXPRESSION_DIRS:
            message = f"{path}: shapedirs has {dirs.shape[2]} directions, want identity + 100 expression"
            raise mf.ModelFileError(message)
        joints = len(FLAME_JOINTS)
        mapping = None
        if arkit_map is not None:
            mapping = np.load(arkit_map)
            if mapping.shape != (52, MOTION53_EXPRESSIONS):
                raise mf.ModelFileError(f"{arkit_map}: ARKit->FLAME map is {mapping.shape}, expected 52x50")
        return cls(
            v_template=v_template,
            shapedirs=dirs[:, :, :-EXPRESSION_DIRS],
            exprdirs=dirs[:, :, -EXPRESSION_DIRS:],
            posedirs=mf.require(arrays, "posedirs", (FLAME_VERTICES, 3, 9 * (joints - 1)), path),
            j_regressor=mf.require(arrays, "J_regressor", (joints, FLAME_VERTICES), path),
            parents=mf.check_parents(mf.require(arrays, "kintree_table", (2, joints), path, np.int64), path),
            weights=mf.require(arrays, "weights", (FLAME_VERTICES, joints), path),
            faces=mf.require(arrays, "f", (None, 3), path, np.int32),
            arkit_expression_map=mapping,
        )

    @property
    def shape_dims(self) -> int:
        return self.shapedirs.shape[2]

    def vertices(
        self,
        expression: np.ndarray | None = None,
        jaw: np.ndarray | None = None,
        *,
        shape: np.ndarray | None = None,
        neck: np.ndarray | None = None,
        eyes: np.ndarray | None = None,
        global_pose: np.ndarray | None = None,
    ) -> np.ndarray:
        """Posed vertices [T, 5023, 3] (float32).

        expression [T, <=100] (missing coefficients are zero), jaw/neck/global_pose [T, 3] axis-angle in
        radians, eyes [T, 6] (left, right), shape [<=S] or [T, <=S]. T comes from the first array given.
        """
        arrays = (expression, jaw, neck, eyes, global_pose, shape)
        given = [a for a in arrays if a is not None and np.ndim(a) == 2]
        batch = int(np.shape(given[0])[0]) if given else 1
        v_shaped = mf.blend(
            self.v_template,
            (self.shapedirs, mf.batch_of(shape, self.shape_dims, batch, "shape")),
            (self.exprdirs, mf.batch_of(expression, EXPRESSION_DIRS, batch, "expression")),
        )
        pose = torch.cat(
            [
                mf.batch_of(global_pose, 3, batch, "global_pose"),
                mf.batch_of(neck, 3, batch, "neck"),
                mf.batch_of(jaw, 3, batch, "jaw"),
                mf.batch_of(eyes, 6, batch, "eyes"),
            ],
            dim=1,
        ).reshape(batch, len(FLAME_JOINTS), 3)
        vertices, _ = mf.skin(
            v_shaped,
            pose,
            torch.from_numpy(self.j_regressor),
            self.parents,
            torch.from_numpy(self.weights),
            torch.from_numpy(self.posedirs),
        )
        return vertices.numpy().astype(np.float32)

    def motion53_vertices(self, motion: np.ndarray, shape: np.ndarray | None = None) -> np.ndarray:
        """ProbTalk3D motion [T, 53] (50 expression + 3 jaw, raw units) -> vertices [T, 5023, 3]."""
        motion = np.asarray(motion, dtype=np.float64)
        if motion.ndim != 2 or motion.shape[1] != MOTION53_EXPRESSIONS + 3:
            raise ValueError(f"motion must be [T, 53], got {motion.shape}")
        return self.vertices(motion[:, :MOTION53_EXPRESSIONS], motion[:, MOTION53_EXPRESSIONS:], shape=shape)


def load_flame(settings: RigSettings | None = None) -> FlameModel | None:
    """The configured FLAME model, or None when no FLAME file is configured."""
    settings = settings or rig_settings()
    if settings.flame_model is None:
        return None
    return FlameModel.load(settings.flame_model, settings.flame_arkit_map)
