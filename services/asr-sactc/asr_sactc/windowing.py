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


def plan_speech_windows(
    wave: np.ndarray, rate: int, speech: Sequence[tuple[int, int]], window_s: float, search_s: float
) -> list[Window]:
    """Windows of at most window_s that cover every speech segment [start, end) and are cut in pauses.

    Consecutive segments share a window while it stays within window_s; each window reaches into the pauses
    around it by up to half its spare length but never past a pause's middle, so no word is split and long
    stretches without speech are not decoded.
    A segment longer than window_s alone is cut at its quietest points (`plan_windows`). No segments, no
    windows.
    """
    longest = math.floor(window_s * rate)
    groups: list[list[tuple[int, int]]] = []
    for start, end in sorted(speech):
        if groups and end - groups[-1][0][0] <= longest:
            groups[-1].append((start, end))
        else:
            groups.append([(start, end)])
    windows: list[Window] = []
    for i, group in enumerate(groups):
        start, end = group[0][0], max(e for _, e in group)
        # Into the pauses on either side, halfway to the neighbouring groups, while the window allows.
        before = groups[i - 1][-1][1] if i else 0
        after = groups[i + 1][0][0] if i + 1 < len(groups) else wave.shape[0]
        slack = max(0, longest - (end - start)) // 2
        start, end = max(start - slack, (before + start) // 2), min(end + slack, (end + after + 1) // 2)
        if end - start <= longest:
            windows.append(Window(start, end))
        else:
            pieces = plan_windows(wave[start:end], rate, window_s, search_s)
            windows += [Window(start + w.start, start + w.end) for w in pieces]
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
