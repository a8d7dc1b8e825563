"""Motion layouts (FLAME 50+3, ARKit-52): per-frame channel names, loss split and model-space scaling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shared.rigs.arkit import ARKIT_SHAPES

# Apple ARKit blendshape names, alphabetical: the open rig's order (shared.rigs.arkit).
ARKIT_NAMES: tuple[str, ...] = tuple(ARKIT_SHAPES)
FLAME_NAMES: tuple[str, ...] = tuple(f"exp{i:02d}" for i in range(50)) + ("jaw_x", "jaw_y", "jaw_z")


@dataclass(frozen=True)
class MotionLayout:
    """One frame of face motion: `dims` channels, split into expression and jaw groups for the losses.

    Model space is `(raw - low) / (high - low)` per channel (the upstream MinMaxScaler with fixed ranges),
    so FLAME expression [-3, 3] and jaw axis-angle [-0.1, 0.5] rad both map to [0, 1].
    """

    name: str
    channel_names: tuple[str, ...]
    jaw_channels: tuple[int, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    clip_output: bool

    @property
    def dims(self) -> int:
        return len(self.channel_names)

    @property
    def exp_channels(self) -> tuple[int, ...]:
        jaw = set(self.jaw_channels)
        return tuple(i for i in range(self.dims) if i not in jaw)

    def to_model(self, raw: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """[..., dims] in rig units -> model space."""
        low, span = self._affine(raw)
        return (raw - low) / span

    def from_model(self, scaled: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """[..., dims] model space -> rig units (ARKit weights clipped to [0, 1], the rig's range)."""
        low, span = self._affine(scaled)
        raw = scaled * span + low
        if self.clip_output:
            raw = raw.clip(0.0, 1.0)
        return raw

    def _affine(self, like: np.ndarray | torch.Tensor) -> tuple:
        low = np.asarray(self.low, dtype=np.float32)
        span = np.asarray(self.high, dtype=np.float32) - low
        if isinstance(like, torch.Tensor):
            return torch.from_numpy(low).to(like), torch.from_numpy(span).to(like)
        return low, span


FLAME_53 = MotionLayout(
    name="flame-53",
    channel_names=FLAME_NAMES,
    jaw_channels=(50, 51, 52),
    low=(-3.0,) * 50 + (-0.1,) * 3,
    high=(3.0,) * 50 + (0.5,) * 3,
    clip_output=False,
)
# The ARKit loss split: the four jaw* weights play FLAME's jaw pose, the other 48 its expression.
ARKIT_52 = MotionLayout(
    name="arkit-52",
    channel_names=ARKIT_NAMES,
    jaw_channels=tuple(i for i, n in enumerate(ARKIT_NAMES) if n.startswith("jaw")),
    low=(0.0,) * 52,
    high=(1.0,) * 52,
    clip_output=True,
)
LAYOUTS: dict[str, MotionLayout] = {layout.name: layout for layout in (FLAME_53, ARKIT_52)}
