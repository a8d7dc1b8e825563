"""Metrics against values worked out by hand on toy meshes."""

from __future__ import annotations

import numpy as np
import pytest
from face_vqvae.metrics import FaceMetrics, diversity, lip_errors, upper_face_dynamics


def test_lip_errors_take_max_squared_distance_over_lip_vertices() -> None:
    gt = np.zeros((2, 3, 3))
    pred = np.zeros((2, 3, 3))
    pred[0, 0] = [1.0, 2.0, 0.0]  # squared distance 5, a lip vertex
    pred[0, 1] = [0.0, 0.0, 1.0]  # 1, a lip vertex
    pred[1, 2] = [9.0, 0.0, 0.0]  # 81, not a lip vertex
    pred[1, 1] = [0.0, 3.0, 0.0]  # 9
    assert lip_errors(gt, pred, lip=[0, 1]).tolist() == [5.0, 9.0]


def test_upper_face_dynamics_is_mean_std_of_squared_displacement() -> None:
    displacement = np.zeros((4, 2, 3))
    displacement[:, 0, 0] = [0.0, 1.0, 0.0, 1.0]  # squared: 0 1 0 1 -> population std 0.5
    displacement[:, 1, 1] = [2.0, 2.0, 2.0, 2.0]  # constant -> std 0
    assert upper_face_dynamics(displacement, [0, 1]) == pytest.approx(0.25)
    assert upper_face_dynamics(displacement, [0]) == pytest.approx(0.5)


def test_diversity_pairs_halves() -> None:
    samples = np.zeros((2, 1, 2, 3))
    samples[1, 0, 0] = [3.0, 4.0, 0.0]  # vertex 0 moves 5, vertex 1 stays: mean 2.5
    assert diversity(samples, np.random.default_rng(0)) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        diversity(samples[:1])


def test_face_metrics_pool_frames_and_sequences() -> None:
    template = np.zeros((2, 3))
    gt = np.zeros((2, 2, 3))
    samples = np.zeros((2, 2, 2, 3))
    samples[0, :, 0, 0] = 2.0  # sample 0: lip error 4 per frame, vertex error (2 + 0) / 2 = 1
    samples[1, :, 0, 0] = 1.0  # sample 1: lip error 1 per frame
    metrics = FaceMetrics(lip=[0], upper=[1], template=template, rng=np.random.default_rng(0))
    metrics.update(gt, samples)
    result = metrics.compute()
    assert result["lve"] == pytest.approx(4.0)
    assert result["mve"] == pytest.approx(1.0)
    assert result["mee"] == pytest.approx(1.5**2)  # the mean sample is displaced by 1.5
    assert result["ce"] == pytest.approx(1.0)  # sample 1 is closest
    assert result["fdd"] == pytest.approx(0.0)  # the upper vertex never moves
    assert result["diversity"] == pytest.approx(0.5)  # 1 apart at vertex 0, 0 at vertex 1
