"""Mel frames <-> 30 fps motion: lengths, their inverse, and causal mean pooling."""

from __future__ import annotations

import pytest
import torch
from tts_gesture.model.frame_rates import mel_frames, motion_frames, motion_owner, pool_to_motion

FULL_RATE = 22050 / 256  # 86.13 mel fps (full config)
TINY_RATE = 8000 / 80  # 100 mel fps (tiny config)


@pytest.mark.parametrize(
    ("num_mel", "rate", "expected"),
    [
        (100, TINY_RATE, 30),
        (5, TINY_RATE, 2),
        (861, FULL_RATE, 300),
        (862, FULL_RATE, 300),
        (3, FULL_RATE, 1),
    ],
)
def test_motion_length_is_rounded_seconds_times_30(num_mel: int, rate: float, expected: int) -> None:
    assert motion_frames(num_mel, rate) == expected


@pytest.mark.parametrize("rate", [TINY_RATE, FULL_RATE])
def test_mel_frames_inverts_motion_frames(rate: float) -> None:
    for num_motion in range(1, 400):
        assert motion_frames(mel_frames(num_motion, rate), rate) == num_motion


@pytest.mark.parametrize("rate", [TINY_RATE, FULL_RATE])
def test_each_motion_frame_owns_the_mel_frames_starting_in_its_interval(rate: float) -> None:
    num_mel = 437
    owner = motion_owner(num_mel, rate)
    last = motion_frames(num_mel, rate) - 1
    for t, k in enumerate(owner.tolist()):
        start = t / rate
        assert k == min(int(start * 30 + 1e-9), last)
    assert set(owner.tolist()) == set(range(last + 1))  # no motion frame is empty


def test_pooling_is_the_mean_per_interval_with_per_item_lengths() -> None:
    x = torch.arange(2 * 10 * 1, dtype=torch.float32).view(2, 10, 1)
    pooled, lengths = pool_to_motion(x, torch.tensor([10, 7]), TINY_RATE)
    assert lengths.tolist() == [3, 2]
    # 100 fps: motion frame 0 owns mel 0-3, frame 1 owns 4-6, frame 2 owns 7-9 (10/3 per frame).
    assert pooled[0, :, 0].tolist() == pytest.approx([1.5, 5.0, 8.0])
    # The second item has 7 mel frames -> 2 motion frames; the third is padding.
    assert pooled[1, :, 0].tolist() == pytest.approx([11.5, 15.0, 0.0])
