"""Rotation conversions (axis-angle, matrix, 6D) for numpy arrays or torch tensors, batched over leading dims.

The 6D form is the first two rows of the rotation matrix, flattened (Zhou et al. 2019, "On the Continuity of
Rotation Representations in Neural Networks", in pytorch3d's `matrix_to_rotation_6d` layout).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import roma
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def axis_angle_to_matrix(axis_angle: Array) -> Array:
    """[..., 3] axis * angle (radians) -> [..., 3, 3]."""
    return _like(roma.rotvec_to_rotmat(_torch(axis_angle)), axis_angle)


def matrix_to_axis_angle(matrix: Array) -> Array:
    """[..., 3, 3] -> [..., 3] with angle in [0, pi]."""
    return _like(roma.rotmat_to_rotvec(_torch(matrix)), matrix)


def matrix_to_rot6d(matrix: Array) -> Array:
    """[..., 3, 3] -> [..., 6]: rows 0 and 1."""
    m = _torch(matrix)
    return _like(m[..., :2, :].reshape(*m.shape[:-2], 6), matrix)


def rot6d_to_matrix(rot6d: Array) -> Array:
    """[..., 6] -> [..., 3, 3] by Gram-Schmidt, so any 6 numbers (a network's output) give a rotation."""
    x = _torch(rot6d)
    a, b = x[..., :3], x[..., 3:]
    row0 = torch.nn.functional.normalize(a, dim=-1)
    row1 = torch.nn.functional.normalize(b - (row0 * b).sum(-1, keepdim=True) * row0, dim=-1)
    row2 = torch.linalg.cross(row0, row1, dim=-1)
    return _like(torch.stack([row0, row1, row2], dim=-2), rot6d)


def axis_angle_to_rot6d(axis_angle: Array) -> Array:
    """[..., 3] -> [..., 6]."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: Array) -> Array:
    """[..., 6] -> [..., 3]."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


def _torch(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.double()
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def _like(result: torch.Tensor, reference: np.ndarray | torch.Tensor):
    """Numpy in, numpy out (in the input's float dtype); tensors stay tensors, keeping autograd."""
    if isinstance(reference, torch.Tensor):
        return result
    dtype = reference.dtype if np.issubdtype(np.asarray(reference).dtype, np.floating) else np.float64
    return result.detach().numpy().astype(dtype, copy=False)
