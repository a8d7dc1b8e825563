"""BVH (Biovision Hierarchy) motion: a small reader and retargeting onto the open rig's skeleton.

Reading. Every joint's rest frame is world-aligned (OFFSETs are in the parent's frame, all rotations zero at
rest); a joint's rotation is the product of its Euler channels in the order listed (`Zrotation Xrotation
Yrotation` -> Rz @ Rx @ Ry, degrees), taking vectors from the joint's frame into its parent's; position
channels add to the joint's OFFSET.

Retargeting. BVH joint names go to SMPL-X joint names through a table per naming family (BIOVISION: Hips,
Chest, LeftCollar, LeftShoulder = upper arm, LeftElbow...; MIXAMO: Hips, Spine, LeftShoulder = clavicle,
LeftArm, LeftForeArm..., any "namespace:" prefix dropped), then onto anny's bones with
`shared.rigs.mappings.SMPLX_TO_OPEN_RIG` (a joint's rotation split over several bones where anny has more).
Both rigs rotate joints in world-aligned rest axes, so a rotation carries over after the change of axes (BVH
here: +Y up, +Z front; anny: +Z up, -Y front; +X is the subject's left in both). The rest poses differ (anny
stands in an A-pose with bent elbows; a BVH rig's rest may be a T-pose or arms down), so each limb bone gets
a fixed rest rotation taking anny's rest direction to the BVH rest direction: then every mapped anny bone
points where its BVH bone points, frame by frame, while anny keeps its own bone lengths. Twist about a
bone's own axis is carried over from the BVH rotation, not fitted. Source joints with no SMPL-X counterpart
(Mixamo's HeadTop_End) pass their rotation on to their mapped descendants.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.rigs.mappings import SMPLX_TO_ANNY_AXES, SMPLX_TO_OPEN_RIG
from shared.rigs.open_rig import Skeleton
from shared.rigs.rotations import axis_angle_to_matrix, matrix_to_axis_angle

_AXES = {"X": 0, "Y": 1, "Z": 2}


class BvhError(ValueError):
    """A BVH file that cannot be parsed; the message says where."""


@dataclass(frozen=True)
class BvhClip:
    """One motion clip. Lengths are in the file's units (usually centimetres)."""

    names: tuple[str, ...]
    parents: np.ndarray  # [J] int64, -1 for the root; parents come before children
    offsets: np.ndarray  # [J, 3] rest offset from the parent joint
    end_sites: np.ndarray  # [J, 3] offset of the joint's End Site, NaN where it has none
    frame_time: float  # seconds
    rotations: np.ndarray  # [T, J, 3, 3] local rotations (parent frame), identity without rotation channels
    translations: np.ndarray  # [T, J, 3] local translations: OFFSET plus any position channels

    @property
    def frames(self) -> int:
        return self.rotations.shape[0]

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def index(self, name: str) -> int:
        return self.names.index(name)

    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """(world rotations [T, J, 3, 3], joint positions [T, J, 3]) of every frame."""
        world = np.empty_like(self.rotations)
        positions = np.empty_like(self.translations)
        for j, parent in enumerate(self.parents):
            if parent < 0:
                world[:, j] = self.rotations[:, j]
                positions[:, j] = self.translations[:, j]
            else:
                world[:, j] = world[:, parent] @ self.rotations[:, j]
                positions[:, j] = positions[:, parent] + np.einsum(
                    "tij,tj->ti", world[:, parent], self.translations[:, j]
                )
        return world, positions

    def rest_positions(self) -> np.ndarray:
        """[J, 3] joint positions with every rotation zero, the root at its OFFSET."""
        out = np.zeros((len(self.names), 3))
        for j, parent in enumerate(self.parents):
            out[j] = self.offsets[j] + (out[parent] if parent >= 0 else 0.0)
        return out


def euler_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """[..., 3] angles in degrees, applied as R_order[0] @ R_order[1] @ R_order[2] -> [..., 3, 3]."""
    angles = np.radians(np.asarray(angles_deg, dtype=np.float64))
    out = np.broadcast_to(np.eye(3), (*angles.shape[:-1], 3, 3)).copy()
    for k, axis in enumerate(order):
        out = out @ _axis_rotation(angles[..., k], _AXES[axis])
    return out


def _axis_rotation(angle: np.ndarray, axis: int) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*angle.shape, 3, 3))
    a, b = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., a, a], out[..., a, b], out[..., b, a], out[..., b, b] = c, -s, s, c
    return out


def read_bvh(source: Path | str | bytes) -> BvhClip:
    """Parse a BVH file (a path, or its bytes)."""
    text = source.decode("latin-1") if isinstance(source, bytes) else Path(source).read_text("latin-1")
    tokens = text.split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    end_sites: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    at = 0

    def take(count: int = 1) -> list[str]:
        nonlocal at
        if at + count > len(tokens):
            raise BvhError("unexpected end of file in HIERARCHY")
        out = tokens[at : at + count]
        at += count
        return out

    if take()[0] != "HIERARCHY":
        raise BvhError("not a BVH file: it does not start with HIERARCHY")
    pending_end = False
    while True:
        word = take()[0]
        if word in ("ROOT", "JOINT"):
            names.append(take()[0])
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            end_sites.append([np.nan] * 3)
            channels.append([])
        elif word == "End":
            take()  # "Site"
            pending_end = True
        elif word == "{":
            stack.append(-2 if pending_end else len(names) - 1)
        elif word == "}":
            if not stack:
                raise BvhError("unbalanced '}' in HIERARCHY")
            stack.pop()
            pending_end = False
            if not stack:
                break
        elif word == "OFFSET":
            values = [float(v) for v in take(3)]
            if pending_end:
                end_sites[stack[-2] if len(stack) > 1 else -1] = values
            else:
                offsets[-1] = values
        elif word == "CHANNELS":
            count = int(take()[0])
            channels[-1] = take(count)
        else:
            raise BvhError(f"unexpected token {word!r} in HIERARCHY")
    if take()[0] != "MOTION":
        raise BvhError("no MOTION section after the HIERARCHY")
    frames = int(take(2)[1])
    frame_time = float(take(3)[2])
    width = sum(len(c) for c in channels)
    values = tokens[at : at + frames * width]
    if len(values) != frames * width:
        raise BvhError(f"MOTION has {len(values)} values, expected {frames} frames x {width} channels")
    motion = np.asarray(values, dtype=np.float64).reshape(frames, width)
    return _clip(names, parents, offsets, end_sites, channels, frame_time, motion)


def _clip(
    names: list[str],
    parents: list[int],
    offsets: list[list[float]],
    end_sites: list[list[float]],
    channels: list[list[str]],
    frame_time: float,
    motion: np.ndarray,
) -> BvhClip:
    frames, count = motion.shape[0], len(names)
    rotations = np.broadcast_to(np.eye(3), (frames, count, 3, 3)).copy()
    translations = np.broadcast_to(np.asarray(offsets), (frames, count, 3)).copy()
    column = 0
    for j, joint_channels in enumerate(channels):
        rotation_order, rotation_columns = "", []
        for k, channel in enumerate(joint_channels):
            axis, kind = channel[0].upper(), channel[1:].lower()
            if axis not in _AXES or kind not in ("rotation", "position"):
                raise BvhError(f"joint {names[j]}: unknown channel {channel!r}")
            if kind == "position":
                translations[:, j, _AXES[axis]] += motion[:, column + k]
            else:
                rotation_order += axis
                rotation_columns.append(column + k)
        if rotation_order:
            rotations[:, j] = euler_matrix(motion[:, rotation_columns], rotation_order)
        column += len(joint_channels)
    return BvhClip(
        names=tuple(names),
        parents=np.asarray(parents, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.float64),
        end_sites=np.asarray(end_sites, dtype=np.float64),
        frame_time=frame_time,
        rotations=rotations,
        translations=translations,
    )


def _sides(left: dict[str, str]) -> dict[str, str]:
    """Both sides from the left one: Left* <-> left_*, Right* <-> right_*."""
    out = dict(left)
    out.update({k.replace("Left", "Right"): v.replace("left_", "right_") for k, v in left.items()})
    return out


_FINGERS = ("Thumb", "Index", "Middle", "Ring", "Pinky")
# BVH joint name -> SMPL-X joint name, per naming family.
RIG_NAMES: dict[str, dict[str, str]] = {
    # MotionBuilder/Biovision names, as in bvhtoolbox's test_mocapbank.bvh.
    "biovision": {
        "Hips": "pelvis",
        "Chest": "spine1",
        "Chest2": "spine3",
        "Neck": "neck",
        "Head": "head",
        **_sides(
            {
                "LeftCollar": "left_collar",
                "LeftShoulder": "left_shoulder",
                "LeftElbow": "left_elbow",
                "LeftWrist": "left_wrist",
                "LeftHip": "left_hip",
                "LeftKnee": "left_knee",
                "LeftAnkle": "left_ankle",
            }
        ),
    },
    # Mixamo names, as in bvhtoolbox's test_freebvh.bvh ("mixamorig:" dropped).
    "mixamo": {
        "Hips": "pelvis",
        "Spine": "spine1",
        "Spine1": "spine2",
        "Spine2": "spine3",
        "Neck": "neck",
        "Head": "head",
        **_sides(
            {
                "LeftShoulder": "left_collar",
                "LeftArm": "left_shoulder",
                "LeftForeArm": "left_elbow",
                "LeftHand": "left_wrist",
                "LeftUpLeg": "left_hip",
                "LeftLeg": "left_knee",
                "LeftFoot": "left_ankle",
                "LeftToeBase": "left_foot",
                "LeftEye": "left_eye_smplhf",
                **{
                    f"LeftHand{finger}{k}": f"left_{finger.lower()}{k}"
                    for finger in _FINGERS
                    for k in (1, 2, 3)
                },
            }
        ),
    },
}
# Bones whose rest direction is matched (SMPL-X joint -> the joint it points at); a missing target uses the
# source joint's End Site. Other bones keep their parent's rest rotation.
_REST_BONES = tuple(
    (f"{side}_{a}", f"{side}_{b}")
    for side in ("left", "right")
    for a, b in (
        ("collar", "shoulder"),
        ("shoulder", "elbow"),
        ("elbow", "wrist"),
        ("wrist", "middle1"),
        ("hip", "knee"),
        ("knee", "ankle"),
        ("ankle", "foot"),
    )
)
_MIN_MATCHED = 8


@dataclass(frozen=True)
class OpenRigClip:
    """Motion on the open rig: local rotations for `OpenRig.pose` and the root's displacement."""

    rotations: np.ndarray  # [T, J, 3, 3] in Skeleton.names order
    translation: np.ndarray  # [T, 3] metres, anny axes
    fps: float

    def axis_angle(self) -> np.ndarray:
        """[T, J, 3] float32 axis-angle (radians)."""
        return matrix_to_axis_angle(self.rotations).astype(np.float32)


def smplx_joints(clip: BvhClip) -> tuple[str, dict[str, int]]:
    """(naming family, {SMPL-X joint: clip joint index}), using the family that names most joints."""
    bare = [name.rsplit(":", 1)[-1] for name in clip.names]
    family, table = max(RIG_NAMES.items(), key=lambda item: sum(n in item[1] for n in bare))
    joints = {table[n]: i for i, n in enumerate(bare) if n in table}
    if len(joints) < _MIN_MATCHED:
        raise BvhError(
            f"only {len(joints)} joints of this clip have known names ({', '.join(bare[:6])}...); "
            f"known naming families: {', '.join(RIG_NAMES)}"
        )
    return family, joints


def retarget(clip: BvhClip, skeleton: Skeleton) -> OpenRigClip:
    """The clip's motion on the open rig (see the module docstring); skeleton is OpenRig.skeleton()."""
    _, joints = smplx_joints(clip)
    world, positions = clip.forward_kinematics()
    frames, count = clip.frames, len(skeleton.names)
    mapped = set(joints.values())
    local = np.broadcast_to(np.eye(3), (frames, count, 3, 3)).copy()
    for joint, index in joints.items():
        if joint not in SMPLX_TO_OPEN_RIG:
            continue
        ancestor = int(clip.parents[index])
        while ancestor >= 0 and ancestor not in mapped:
            ancestor = int(clip.parents[ancestor])
        relative = world[:, index]
        if ancestor >= 0:
            relative = np.swapaxes(world[:, ancestor], -1, -2) @ relative
        axis_angle = matrix_to_axis_angle(SMPLX_TO_ANNY_AXES @ relative @ SMPLX_TO_ANNY_AXES.T)
        for bone, fraction in SMPLX_TO_OPEN_RIG[joint]:
            local[:, skeleton.index(bone)] = axis_angle_to_matrix(axis_angle * fraction)
    fixes = _rest_rotations(clip, joints, skeleton)
    parent_fix = fixes[np.maximum(skeleton.parents, 0)]
    parent_fix[0] = np.eye(3)
    rotations = np.swapaxes(parent_fix, -1, -2) @ local @ fixes
    root = joints["pelvis"]
    rest = clip.rest_positions()
    displacement = (positions[:, root] - rest[root]) @ SMPLX_TO_ANNY_AXES.T
    return OpenRigClip(rotations, displacement * _scale(rest, joints, skeleton), clip.fps)


def _rest_rotations(clip: BvhClip, joints: dict[str, int], skeleton: Skeleton) -> np.ndarray:
    """[J, 3, 3] world rotation taking each anny bone from its rest direction to the BVH rest direction."""
    rest = clip.rest_positions()
    own: dict[int, np.ndarray] = {}
    for joint, target in _REST_BONES:
        if joint not in joints or joint not in SMPLX_TO_OPEN_RIG or target not in SMPLX_TO_OPEN_RIG:
            continue
        if target in joints:
            source = rest[joints[target]] - rest[joints[joint]]
        else:
            source = clip.end_sites[joints[joint]]
        if not np.all(np.isfinite(source)) or np.linalg.norm(source) < 1e-9:
            continue
        bones = [skeleton.index(b) for b, _ in SMPLX_TO_OPEN_RIG[joint]]
        head = skeleton.index(SMPLX_TO_OPEN_RIG[target][0][0])
        direction = skeleton.rest_joints[head] - skeleton.rest_joints[bones[0]]
        fix = rotation_between(direction, SMPLX_TO_ANNY_AXES @ source)
        own.update(dict.fromkeys(bones, fix))
    fixes = np.tile(np.eye(3), (len(skeleton.names), 1, 1))
    for j, parent in enumerate(skeleton.parents):
        fixes[j] = own.get(j, fixes[parent] if parent >= 0 else np.eye(3))
    return fixes


def _scale(rest: np.ndarray, joints: dict[str, int], skeleton: Skeleton) -> float:
    """Metres of the open rig per BVH unit, from the left leg's hip-to-ankle length."""
    source = np.linalg.norm(rest[joints["left_ankle"]] - rest[joints["left_hip"]])
    target = np.linalg.norm(
        skeleton.rest_joints[skeleton.index("foot.L")] - skeleton.rest_joints[skeleton.index("upperleg01.L")]
    )
    return float(target / source)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[3, 3]: the smallest rotation taking the direction of a to the direction of b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis = np.cross(a, b)
    norm = np.linalg.norm(axis)
    angle = np.arctan2(norm, float(a @ b))
    return axis_angle_to_matrix(axis / norm * angle if norm > 1e-12 else np.zeros(3))


def open_rig_joints(
    rotations: np.ndarray, skeleton: Skeleton, translation: np.ndarray | None = None
) -> np.ndarray:
    """Forward kinematics on the open rig: local rotations [T, J, 3, 3] -> joint positions [T, J, 3] (metres).

    The same joint positions as OpenRig.pose(...).joints for these rotations, without building the mesh.
    """
    frames = rotations.shape[0]
    world = np.empty_like(rotations)
    joints = np.empty((frames, len(skeleton.names), 3))
    for j, parent in enumerate(skeleton.parents):
        if parent < 0:
            world[:, j] = rotations[:, j]
            joints[:, j] = skeleton.rest_joints[j] + (0.0 if translation is None else translation)
        else:
            world[:, j] = world[:, parent] @ rotations[:, j]
            bone = skeleton.rest_joints[j] - skeleton.rest_joints[parent]
            joints[:, j] = joints[:, parent] + world[:, parent] @ bone
    return joints
