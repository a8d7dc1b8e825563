"""shared.synth.mixtures: reproducible LibriSpeechMix-style sets whose overlap, SOT, RTTM and STM agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared import media, voices
from shared.synth import mixtures
from shared.synth.labels import read_rttm, read_stm, sot_transcript
from shared.synth.mixtures import choose_delays, generate_mixtures, overlap_ratio

# Fast engines only; the set needs at least three voices for three-speaker mixtures.
FAST = ["flite:slt", "flite:rms", "espeak:en-us", "espeak:en-us+f3", "espeak:en-gb+m3"]
FIELDS = {
    "id",
    "mixed_wav",
    "texts",
    "wavs",
    "delays",
    "speakers",
    "durations",
    "genders",
    "sot",
    "overlap_ratio",
}


def _fast_voices() -> list[str]:
    installed = [v for v in FAST if v in voices.available_voices()]
    if len(installed) < 3:
        pytest.skip("needs three of flite:slt, flite:rms, espeak:en-us... (apt-get install flite espeak-ng)")
    return installed


def _records(jsonl: Path) -> list[dict]:
    return [json.loads(line) for line in jsonl.read_text().splitlines()]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mix")
    return generate_mixtures(out, 8, seed=11, speakers=(1, 3), overlap=(0.2, 0.4), voices=_fast_voices())


def test_overlap_ratio_of_simple_layouts() -> None:
    assert overlap_ratio([0, 5], [10, 10]) == pytest.approx(5 / 15)
    assert overlap_ratio([0, 10], [10, 10]) == 0.0  # touching is not overlapping
    assert overlap_ratio([0, 2], [10, 3]) == pytest.approx(3 / 10)  # nested
    assert overlap_ratio([0, 2, 4], [10, 10, 10]) == pytest.approx(10 / 14)  # 2-10 covered at least twice
    assert overlap_ratio([0], [7]) == 0.0


@pytest.mark.parametrize("target", [0.0, 0.05, 0.2, 0.35, 0.5, 0.75])
@pytest.mark.parametrize("lengths", [[40000, 36000], [30000, 52000, 41000]])
def test_delays_reach_the_target_ratio(target: float, lengths: list[int]) -> None:
    shares = np.full(len(lengths) - 1, 0.8)
    starts = choose_delays(lengths, target, shares, tolerance=0.005)
    assert starts is not None and starts[0] == 0
    assert all(
        b - a >= mixtures.MIN_START_GAP_S * mixtures.SAMPLE_RATE - 1
        for a, b in zip(starts, starts[1:], strict=False)
    )
    assert overlap_ratio(starts, lengths) == pytest.approx(target, abs=0.005)


def test_unreachable_ratio_gives_none() -> None:
    # Two utterances of 1 s and 3 s can overlap at most 1/3 of the mixture.
    assert choose_delays([16000, 48000], 0.6, np.array([1.0]), tolerance=0.01) is None


def test_sot_is_first_in_first_out_by_start() -> None:
    assert sot_transcript(["B TALKS", "A TALKS", "C TALKS"], [1.5, 0.0, 2.0]) == "A TALKS $ B TALKS $ C TALKS"


def test_layout_and_requested_overlap(mixed: Path) -> None:
    records = _records(mixed)
    assert len(records) == 8 and {len(r["speakers"]) for r in records} >= {1, 2}
    for r in records:
        assert FIELDS <= set(r)
        k = len(r["speakers"])
        assert len(set(r["speakers"])) == k and all(
            len(r[f]) == k for f in ("texts", "wavs", "delays", "durations")
        )
        assert r["delays"][0] == 0.0 and r["delays"] == sorted(r["delays"])
        assert r["sot"] == " $ ".join(r["texts"])
        assert all(t == t.upper() and "," not in t for t in r["texts"])
        starts = [round(d * 16000) for d in r["delays"]]
        lengths = [round(d * 16000) for d in r["durations"]]
        ratio = overlap_ratio(starts, lengths)
        assert ratio == pytest.approx(r["overlap_ratio"], abs=1e-6)
        if k == 1:
            assert ratio == 0.0
        else:
            assert 0.2 - 0.01 <= ratio <= 0.4 + 0.01


def test_audio_files_match_the_manifest(mixed: Path) -> None:
    root = mixed.parent
    for r in _records(mixed):
        mixture, rate = media.load_audio(root / r["mixed_wav"])
        assert rate == 16000 and not media.is_silent(mixture)
        end = max(d + dur for d, dur in zip(r["delays"], r["durations"], strict=True))
        assert mixture.shape[0] == round(end * 16000) == round(r["duration"] * 16000)
        total = np.zeros_like(mixture)
        for path, delay, duration in zip(r["wavs"], r["delays"], r["durations"], strict=True):
            source, _ = media.load_audio(root / path)
            assert source.shape[0] == round(duration * 16000)
            start = round(delay * 16000)
            total[start : start + source.shape[0]] += source
        # The mixture is the sum of the stored sources (scaled down only if it would clip).
        scale = float(np.dot(mixture, total) / np.dot(total, total))
        assert 0.5 < scale <= 1.0 + 1e-3
        np.testing.assert_allclose(mixture, scale * total, atol=2 / 32768)


def test_rttm_and_stm_agree_with_delays_and_durations(mixed: Path) -> None:
    records = {r["id"]: r for r in _records(mixed)}
    rttm, stm = read_rttm(mixed.with_suffix(".rttm")), read_stm(mixed.with_suffix(".stm"))
    assert len(rttm) == len(stm) == sum(len(r["speakers"]) for r in records.values())
    for seg_r, seg_s in zip(rttm, stm, strict=True):
        r = records[seg_r.file]
        i = r["speakers"].index(seg_r.speaker)
        for seg in (seg_r, seg_s):
            assert (seg.file, seg.speaker) == (r["id"], r["speakers"][i])
            assert seg.start == pytest.approx(r["delays"][i], abs=1e-3)
            assert seg.end == pytest.approx(r["delays"][i] + r["durations"][i], abs=1.5e-3)
        assert seg_s.text == r["texts"][i]
    for line in mixed.with_suffix(".rttm").read_text().splitlines():
        fields = line.split()
        assert len(fields) == 10 and fields[0] == "SPEAKER" and fields[2] == "1" and fields[5] == "<NA>"


def test_same_seed_same_bytes_other_seed_other_data(mixed: Path, tmp_path: Path) -> None:
    again = generate_mixtures(
        tmp_path / "again", 8, seed=11, speakers=(1, 3), overlap=(0.2, 0.4), voices=_fast_voices()
    )
    first = sorted(p.relative_to(mixed.parent) for p in mixed.parent.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again.parent) for p in again.parent.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (mixed.parent / rel).read_bytes() == (again.parent / rel).read_bytes(), rel
    other = generate_mixtures(tmp_path / "other", 2, seed=12, speakers=(2, 2), voices=_fast_voices())
    assert other.read_text() != mixed.read_text()


def test_word_texts_and_bad_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _fast_voices()
    jsonl = generate_mixtures(
        tmp_path, 2, seed=3, speakers=(2, 2), overlap=(0.1, 0.1), voices=fast, text_source="words"
    )
    for r in _records(jsonl):
        assert r["overlap_ratio"] == pytest.approx(0.1, abs=0.01)
    monkeypatch.setattr(mixtures, "MAX_ATTEMPTS", 2)  # each attempt synthesises new texts
    with pytest.raises(ValueError, match="no delays reach"):
        generate_mixtures(tmp_path / "x", 1, seed=0, speakers=(3, 3), overlap=(0.95, 0.99), voices=fast)
    with pytest.raises(ValueError, match="speakers must satisfy"):
        generate_mixtures(tmp_path / "y", 1, seed=0, speakers=(1, len(fast) + 1), voices=fast)
    with pytest.raises(voices.UnknownVoice, match="flite:nobody"):
        generate_mixtures(tmp_path / "z", 1, seed=0, voices=["flite:nobody"])
