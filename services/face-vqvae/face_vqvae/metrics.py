"""Evaluation metrics of upstream `evaluation.py` (LVE, MEE, CE, FDD, diversity, MVE) on mesh vertices.

Vertices are [T, V, 3] per sequence in the rig's units (metres for FLAME); samples are [N, T, V, 3].
The lip and upper-face vertex index lists are arguments, so any rig works (FLAME ships 428 and 1501).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def lip_errors(gt: np.ndarray, pred: np.ndarray, lip: Sequence[int]) -> np.ndarray:
    """Per frame [T]: max over lip vertices of the squared L2 distance between gt and pred."""
    diff = gt[:, lip] - pred[:, lip]
    return np.square(diff).sum(axis=-1).max(axis=1)


def upper_face_dynamics(displacement: np.ndarray, upper: Sequence[int]) -> float:
    """Mean over upper-face vertices of the std over time (population) of the squared displacement."""
    return float(np.square(displacement[:, upper]).sum(axis=-1).std(axis=0).mean())


def diversity(samples: np.ndarray, rng: np.random.Generator | None = None) -> float:
    """Shuffle the N samples, pair the first half with the second, average per-vertex L2 over all pairs.

    Upstream uses 10 samples (5 pairs) and np.random.shuffle; pass `rng` for a reproducible shuffle.
    """
    if samples.shape[0] < 2 or samples.shape[0] % 2:
        raise ValueError("diversity needs an even number (>= 2) of samples")
    order = (rng or np.random.default_rng()).permutation(samples.shape[0])
    half = samples.shape[0] // 2
    first, second = samples[order[:half]], samples[order[half:]]
    return float(np.linalg.norm(first - second, axis=-1).mean(axis=(1, 2)).mean())


@dataclass
class FaceMetrics:
    """Accumulates sequences and reports upstream's pooled numbers.

    LVE/MVE use the first sample; MEE is LVE of the sample mean; CE is LVE of the sample whose summed
    per-frame LVE is smallest; the three are means over all frames of all sequences. FDD is the mean over
    sequences of (upper-face dynamics of gt - of the first sample), displacements taken from `template`.
    Diversity is the mean over sequences.
    """

    lip: Sequence[int]
    upper: Sequence[int]
    template: np.ndarray
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    _lve: list[np.ndarray] = field(default_factory=list)
    _mve: list[np.ndarray] = field(default_factory=list)
    _mee: list[np.ndarray] = field(default_factory=list)
    _ce: list[np.ndarray] = field(default_factory=list)
    _fdd: list[float] = field(default_factory=list)
    _diversity: list[float] = field(default_factory=list)

    def update(self, gt: np.ndarray, samples: np.ndarray) -> None:
        """gt [T, V, 3], samples [N, T, V, 3] (same T)."""
        per_sample = [lip_errors(gt, s, self.lip) for s in samples]
        self._lve.append(per_sample[0])
        self._mve.append(np.linalg.norm(gt - samples[0], axis=-1).mean(axis=1))
        self._mee.append(lip_errors(gt, samples.mean(axis=0), self.lip))
        self._ce.append(min(per_sample, key=lambda e: float(e.sum())))
        self._fdd.append(
            upper_face_dynamics(gt - self.template, self.upper)
            - upper_face_dynamics(samples[0] - self.template, self.upper)
        )
        if samples.shape[0] >= 2:
            self._diversity.append(diversity(samples[: samples.shape[0] // 2 * 2], self.rng))

    def compute(self) -> dict[str, float]:
        if not self._lve:
            raise ValueError("no sequences were added")
        result = {
            "lve": float(np.concatenate(self._lve).mean()),
            "mve": float(np.concatenate(self._mve).mean()),
            "mee": float(np.concatenate(self._mee).mean()),
            "ce": float(np.concatenate(self._ce).mean()),
            "fdd": float(np.mean(self._fdd)),
        }
        if self._diversity:
            result["diversity"] = float(np.mean(self._diversity))
        return result
