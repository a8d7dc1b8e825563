"""Windows for long recordings: cuts at pauses, no slivers, stitched segments that match the SOT text."""

import numpy as np
import pytest
from asr_sactc.windowing import Window, plan_windows, stitch

RATE = 1000


def _speech_with_pauses(seconds: float, pauses_at: list[float]) -> np.ndarray:
    """Noise at 0.3 RMS with 0.2 s of silence centred on each pause time."""
    wave = 0.3 * np.random.default_rng(0).standard_normal(int(seconds * RATE)).astype(np.float32)
    for at in pauses_at:
        wave[int((at - 0.1) * RATE) : int((at + 0.1) * RATE)] = 0.0
    return wave


def test_a_short_recording_is_one_window() -> None:
    wave = np.ones(5 * RATE, dtype=np.float32)
    assert plan_windows(wave, RATE, window_s=5.0, search_s=1.0) == [Window(0, 5 * RATE)]


def test_cuts_fall_in_pauses_and_windows_tile_the_recording() -> None:
    wave = _speech_with_pauses(25.0, [9.3, 17.8])
    windows = plan_windows(wave, RATE, window_s=10.0, search_s=3.0)
    assert [w.start for w in windows[1:]] == [w.end for w in windows[:-1]]
    assert windows[0].start == 0 and windows[-1].end == wave.shape[0]
    assert all(w.end - w.start <= 10 * RATE for w in windows)
    cuts = [w.start / RATE for w in windows[1:]]
    # Anywhere the 50 ms cut frame fits inside the 0.2 s pause.
    assert cuts == pytest.approx([9.3, 17.8], abs=0.076)
    assert all(wave[int(c * RATE)] == 0.0 for c in cuts)


@pytest.mark.parametrize("seconds", [10.001, 20.5, 61.0])
def test_windows_are_near_equal_with_no_sliver_at_the_end(seconds: float) -> None:
    wave = np.ones(int(seconds * RATE), dtype=np.float32)
    windows = plan_windows(wave, RATE, window_s=10.0, search_s=2.0)
    lengths = [w.end - w.start for w in windows]
    assert len(windows) == int(np.ceil(seconds / 10.0))
    assert max(lengths) <= 10 * RATE and min(lengths) >= 4 * RATE
    assert sum(lengths) == wave.shape[0]


def test_stitch_ranks_speakers_per_window_and_drops_empty_streams() -> None:
    windows = [Window(0, 2000), Window(2000, 3500)]
    segments, sot = stitch(windows, [["HELLO THERE", " ", "GOOD  DAY"], [""]], RATE)
    assert [(s.speaker, s.text, s.start_s, s.end_s) for s in segments] == [
        ("spk1", "HELLO THERE", 0.0, 2.0),
        ("spk2", "GOOD DAY", 0.0, 2.0),
    ]
    assert sot == "HELLO THERE $ GOOD DAY"
    segments, sot = stitch(windows, [["A"], ["B", "C"]], RATE)
    assert [(s.speaker, s.start_s) for s in segments] == [("spk1", 0.0), ("spk1", 2.0), ("spk2", 2.0)]
    assert [part.strip() for part in sot.split("$")] == [s.text for s in segments]


def test_speech_windows_cover_the_speech_and_cut_in_pauses() -> None:
    from asr_sactc.windowing import plan_speech_windows

    wave = np.ones(30 * RATE, dtype=np.float32)
    speech = [(1000, 4000), (5000, 8000), (12000, 15000), (20000, 29000)]
    windows = plan_speech_windows(wave, RATE, speech, window_s=10.0, search_s=2.0)
    assert all(w.end - w.start <= 10 * RATE for w in windows)
    # Every segment lies inside one window; no window starts or ends inside a segment.
    for start, end in speech:
        assert sum(w.start <= start and end <= w.end for w in windows) == 1
    assert not any(s < cut < e for s, e in speech for w in windows for cut in (w.start, w.end))
    # The first two segments share a window; each window reaches into its pauses by up to half its spare
    # length, never past the middle of a pause (10000 and 17500 here).
    assert windows == [Window(500, 9500), Window(10000, 17500), Window(19500, 29500)]
    assert plan_speech_windows(wave, RATE, [], window_s=10.0, search_s=2.0) == []


def test_a_segment_longer_than_a_window_is_cut_inside() -> None:
    from asr_sactc.windowing import plan_speech_windows

    wave = _speech_with_pauses(25.0, [12.0])
    windows = plan_speech_windows(wave, RATE, [(0, 25 * RATE)], window_s=10.0, search_s=3.0)
    assert windows[0].start == 0 and windows[-1].end == 25 * RATE
    assert [w.start for w in windows[1:]] == [w.end for w in windows[:-1]]
    assert all(w.end - w.start <= 10 * RATE for w in windows)
