"""Long recordings: cut into windows at quiet points, and stitch the windows' speaker transcripts together."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asr_sactc.tokenizer import SC

# Cuts are placed on the quietest span of this length, so a word is rarely split between two windows.
CUT_FRAME_S = 0.05


@dataclass(frozen=True)
class Window:
    """Samples [start, end) of the recording."""

    start: int
    end: int


@dataclass(frozen=True)
class SpeakerSegment:
    """One speaker stream of one window; `speaker` is spk<k>, k its first-in-first-out rank in the window."""

    speaker: str
    text: str
    start_s: float
    end_s: float


def plan_windows(wave: np.ndarray, rate: int, window_s: float, search_s: float) -> list[Window]:
    """Windows of at most window_s covering the wave, of near-equal length, each cut at the quietest
    CUT_FRAME_S within search_s of its target position (search_s < window_s / 2)."""
    total, longest = wave.shape[0], math.floor(window_s * rate)
    if total <= longest:
        return [Window(0, total)]
    frame, half_search = max(1, round(CUT_FRAME_S * rate)), round(search_s * rate / 2)
    energy = np.concatenate([[0.0], np.cumsum(np.square(wave, dtype=np.float64))])
    windows, start = [], 0
    while total - start > longest:
        remaining = math.ceil((total - start) / longest)
        # Equal shares keep every window, the last included, near total / count: none is a sliver.
        target = start + (total - start) // remaining
        lo, hi = max(start + frame, target - half_search), min(start + longest, target + half_search)
        # The energy of the frame centred on each candidate cut; among equal minima (a silent stretch, a
        # constant signal) the one nearest the target keeps the windows equal.
        candidates = np.arange(lo, hi + 1)
        left, right = np.clip(candidates - frame // 2, 0, total), np.clip(candidates + frame // 2, 0, total)
        frame_energy = energy[right] - energy[left]
        quietest = candidates[frame_energy <= frame_energy.min()]
        cut = int(quietest[np.argmin(np.abs(quietest - target))])
        windows.append(Window(start, cut))
        start = cut
    windows.append(Window(start, total))
    return windows


def stitch(
    windows: Sequence[Window], streams: Sequence[Sequence[str]], rate: int
) -> tuple[list[SpeakerSegment], str]:
    """Per-speaker segments of all windows in time order, and the whole SOT transcript.

    SOT ranks speakers by start time within one window and carries no identity, so spk1 of one window
    need not be spk1 of the next; a segment spans its window. Empty streams are dropped. The SOT text joins
    every kept stream with ` $ `: split on `$`, it gives the segments' texts in order.
    """
    segments = []
    for window, texts in zip(windows, streams, strict=True):
        kept = [" ".join(text.split()) for text in texts if text.strip()]
        segments += [
            SpeakerSegment(f"spk{rank}", text, window.start / rate, window.end / rate)
            for rank, text in enumerate(kept, start=1)
        ]
    return segments, f" {SC} ".join(segment.text for segment in segments)
