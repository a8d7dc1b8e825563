"""Readers for user-supplied SMPL-family model files (.pkl with chumpy arrays, or .npz) and their skinning.

Nothing licensed ships with Orate: FLAME and SMPL-X files are read from paths the user configures.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.rigs.rotations import axis_angle_to_matrix

_SKIN_CHUNK = 32


class ModelFileError(ValueError):
    """A model file is missing, unreadable or has arrays of the wrong shape; the message says which."""


class _ChumpyArray:
    """Stands in for chumpy's Ch on unpickling: chumpy does not install on current numpy, and a plain Ch
    pickles its value as the `x` entry of its state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}


# What numpy arrays, dtypes and scalars pickle as (numpy.core.* before numpy 2, numpy._core.* after).
_NUMPY_NAMES = {"_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer"}
_PLAIN_GLOBALS = {
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
    ("_codecs", "encode"),  # how Python 3 writes bytes into protocol-2 pickles
}


class _ModelUnpickler(pickle.Unpickler):
    """Loads only arrays: numpy, scipy.sparse and chumpy (stubbed) classes; any other global is refused, so a
    model file cannot run code the way an arbitrary pickle can."""

    def find_class(self, module: str, name: str) -> Any:
        root = module.split(".")[0]
        if root == "chumpy":
            return _ChumpyArray
        if module.startswith("scipy.sparse"):
            # Files pickled by old scipy name private modules (scipy.sparse.csc); the classes are public now.
            import scipy.sparse

            if name.endswith(("_matrix", "_array")):
                return getattr(scipy.sparse, name)
        if (root == "numpy" and name in _NUMPY_NAMES) or (module, name) in _PLAIN_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a model file")


def load_model_arrays(path: Path) -> dict[str, np.ndarray]:
    """The named arrays of a .pkl (Python 2 pickles included) or .npz model file, sparse ones made dense."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                raw: dict[str, Any] = {key: npz[key] for key in npz.files}
        else:
            with path.open("rb") as f:
                raw = _ModelUnpickler(f, encoding="latin1").load()
    except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelFileError(f"{path}: expected a dict of arrays, got {type(raw).__name__}")
    return {key: array for key, value in raw.items() if (array := _to_array(value)) is not None}


def require(
    arrays: dict[str, np.ndarray],
    key: str,
    shape: Sequence[int | None],
    path: Path,
    dtype: type[np.generic] = np.float64,
) -> np.ndarray:
    """arrays[key] as dtype, checked against shape (None matches any size); ModelFileError otherwise."""
    if key not in arrays:
        raise ModelFileError(f"{path}: no {key!r} array (has {', '.join(sorted(arrays))})")
    array = arrays[key]
    fits = array.ndim == len(shape) and all(
        want is None or want == got for want, got in zip(shape, array.shape, strict=True)
    )
    if not fits:
        expected = "x".join("*" if s is None else str(s) for s in shape)
        raise ModelFileError(f"{path}: {key!r} has shape {array.shape}, expected {expected}")
    return np.ascontiguousarray(array, dtype=dtype)


def check_parents(parents: np.ndarray, path: Path) -> np.ndarray:
    """Parent indices from a kintree_table [2, J]; the root's becomes -1; parents must precede children."""
    parents = np.asarray(parents[0] if parents.ndim == 2 else parents, dtype=np.int64).copy()
    parents[0] = -1
    if np.any(parents[1:] >= np.arange(1, parents.size)) or np.any(parents[1:] < 0):
        raise ModelFileError(f"{path}: kintree_table is not in parent-before-child order")
    return parents


def skin(
    v_shaped: torch.Tensor,
    pose: torch.Tensor,
    j_regressor: torch.Tensor,
    parents: np.ndarray,
    weights: torch.Tensor,
    posedirs: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SMPL-style pose blendshapes and linear blend skinning (Loper et al. 2015).

    v_shaped [B, V, 3] rest vertices after shape/expression; pose [B, J, 3] axis-angle per joint, in the
    parent's frame (rest frames are world-aligned); j_regressor [J, V]; weights [V, J];
    posedirs [V, 3, 9 (J - 1)].
    Returns posed vertices [B, V, 3] and joints [B, J, 3].
    """
    batch, joint_count = pose.shape[0], pose.shape[1]
    rest_joints = torch.einsum("jv,bvc->bjc", j_regressor, v_shaped)
    rotations = axis_angle_to_matrix(pose)
    eye = torch.eye(3, dtype=pose.dtype)
    pose_feature = (rotations[:, 1:] - eye).reshape(batch, -1)
    v_posed = v_shaped + torch.einsum("vcp,bp->bvc", posedirs, pose_feature)

    local = torch.zeros(batch, joint_count, 4, 4, dtype=pose.dtype)
    local[..., :3, :3] = rotations
    local[..., 3, 3] = 1.0
    offsets = rest_joints.clone()
    offsets[:, 1:] -= rest_joints[:, parents[1:]]
    local[..., :3, 3] = offsets
    chain = [local[:, 0]]
    for j in range(1, joint_count):
        chain.append(chain[int(parents[j])] @ local[:, j])
    world = torch.stack(chain, dim=1)
    posed_joints = world[..., :3, 3]
    # Skinning transforms move rest-space points: subtract each joint's rotated rest position.
    transforms = world.clone()
    transforms[..., :3, 3] -= torch.einsum("bjcd,bjd->bjc", world[..., :3, :3], rest_joints)
    # Blend per chunk of frames: the per-vertex [V, 3, 4] transforms of a long clip would not fit in memory.
    out = []
    for chunk in range(0, batch, _SKIN_CHUNK):
        blended = torch.einsum("vj,bjcd->bvcd", weights, transforms[chunk : chunk + _SKIN_CHUNK, :, :3])
        posed = v_posed[chunk : chunk + _SKIN_CHUNK]
        out.append(torch.einsum("bvcd,bvd->bvc", blended[..., :3], posed) + blended[..., 3])
    return torch.cat(out), posed_joints


def blend(template: np.ndarray, *terms: tuple[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """template [V, 3] + sum of dirs [V, 3, K] @ coefficients [B, K] -> [B, V, 3]."""
    out = torch.from_numpy(template)[None]
    for dirs, coefficients in terms:
        out = out + torch.einsum("vck,bk->bvc", torch.from_numpy(dirs), coefficients)
    return out


def batch_of(value: np.ndarray | None, width: int, batch: int, name: str) -> torch.Tensor:
    """[B, <=width] or [<=width] coefficients -> [batch, width] float64 tensor, zero-padded; zeros if None."""
    out = torch.zeros(batch, width, dtype=torch.float64)
    if value is None:
        return out
    array = np.asarray(value, dtype=np.float64)
    array = array.reshape(1, -1) if array.ndim == 1 else array.reshape(array.shape[0], -1)
    if array.shape[1] > width or array.shape[0] not in (1, batch):
        raise ValueError(f"{name}: shape {np.shape(value)} does not fit [{batch}, <={width}]")
    out[:, : array.shape[1]] = torch.from_numpy(array)
    return out


def _to_array(value: Any) -> np.ndarray | None:
    if isinstance(value, _ChumpyArray):
        value = value.state.get("x")
    elif hasattr(value, "toarray"):
        value = value.toarray()
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    return array if array.dtype != object else None
