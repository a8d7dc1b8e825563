"""Mel frames <-> 30 fps motion frames, and the causal pooling between them.

A motion frame k covers [k / 30, (k + 1) / 30) s and is the mean of the mel frames that start inside it, so
it reads no mel frame after its own interval ends (FastTalker's causal design; the spec's "strided
pooling"). The motion of N mel frames has round(N * 30 / frame_rate) frames; mel frames past the last
motion interval (rounding) fold into the last motion frame.
"""

from __future__ import annotations

import math

import torch

from tts_gesture.config import MOTION_FPS


def motion_frames(num_mel: int, frame_rate: float, fps: float = MOTION_FPS) -> int:
    """Motion frames for num_mel mel frames: round half up of num_mel * fps / frame_rate."""
    return math.floor(num_mel * fps / frame_rate + 0.5)


def mel_frames(num_motion: int, frame_rate: float, fps: float = MOTION_FPS) -> int:
    """Mel frames for num_motion motion frames (motion_frames inverts it while frame_rate >= 2 * fps)."""
    return math.floor(num_motion * frame_rate / fps + 0.5)


def motion_owner(num_mel: int, frame_rate: float, fps: float = MOTION_FPS) -> torch.Tensor:
    """[num_mel] int64: the motion frame each mel frame belongs to (floor(t * fps / rate), clamped)."""
    last = max(motion_frames(num_mel, frame_rate, fps) - 1, 0)
    owner = torch.floor(torch.arange(num_mel, dtype=torch.float64) * fps / frame_rate + 1e-9).long()
    return owner.clamp(max=last)


def pool_to_motion(
    x: torch.Tensor, mel_lens: torch.Tensor, frame_rate: float, fps: float = MOTION_FPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, T, C] at the mel rate (valid up to mel_lens [B]) -> ([B, Tm, C] at fps, motion lengths [B]).

    Frames past an item's motion length are zero.
    """
    motion_lens = torch.tensor([motion_frames(int(n), frame_rate, fps) for n in mel_lens], device=x.device)
    weights = torch.zeros(x.shape[0], max(int(motion_lens.max()), 1), x.shape[1], device=x.device)
    for b, n in enumerate(mel_lens.tolist()):
        if n:
            owner = motion_owner(n, frame_rate, fps).to(x.device)
            weights[b, owner, torch.arange(n, device=x.device)] = 1.0
    weights = weights / weights.sum(dim=2, keepdim=True).clamp(min=1.0)
    return weights.to(x.dtype) @ x, motion_lens
