"""Held-out evaluation sets: Transcriber parsing, channel attribution, and the manifest built from what is
installed here (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shared import data_cli
from shared.evalsets import (
    KINDS,
    USE,
    build_evalsets,
    channel_speakers,
    clean_trs_text,
    parse_trs,
)
from shared.media import encode_wav
from shared.synth.labels import Segment, read_rttm, read_stm

TRS = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<!DOCTYPE Trans SYSTEM "trans-14.dtd">
<Trans audio_filename="call" version="1">
<Speakers>
<Speaker id="spk1" name="Ann"/>
<Speaker id="spk2" name="Bob"/>
</Speakers>
<Episode>
<Section type="report" startTime="0" endTime="6.0">
<Turn speaker="spk1" startTime="0" endTime="2.5">
<Sync time="0"/>
{breath} Hello ((there)), Bob.
<Sync time="1.5"/>
<Event desc="noise"/>
How are-
</Turn>
<Turn speaker="spk1 spk2" startTime="2.5" endTime="3.5">
<Sync time="2.5"/>
<Who nb="1"/>
fine
<Who nb="2"/>
I'm well
</Turn>
<Turn speaker="spk2" startTime="3.5" endTime="4.0">
<Sync time="3.5"/>
{laugh}
</Turn>
<Turn startTime="4.0" endTime="6.0">
<Sync time="4.0"/>
</Turn>
</Section>
</Episode>
</Trans>
"""


def test_trs_turns_become_per_speaker_segments_cut_at_syncs():
    names, segments = parse_trs(TRS, "call")
    assert names == {"spk1": "Ann", "spk2": "Bob"}
    assert segments == [
        Segment("call", "spk1", 0.0, 1.5, "Hello there Bob"),
        Segment("call", "spk1", 1.5, 2.5, "How are-"),
        Segment("call", "spk1", 2.5, 3.5, "fine"),
        Segment("call", "spk2", 2.5, 3.5, "I'm well"),
    ]  # the laugh-only turn and the speakerless turn give no segment


def test_trs_text_keeps_words_only():
    assert clean_trs_text('{inhale} ((I-)) You know, "Ann" [noise] it\'s like- {exhale}') == (
        "I- You know Ann it's like-"
    )
    assert clean_trs_text("grand débat à Lyon .") == "grand débat à Lyon"


def test_each_speaker_gets_the_channel_they_are_loud_on():
    rate = 8000
    rng = np.random.default_rng(0)
    audio = 0.001 * rng.standard_normal((4 * rate, 2))
    audio[: 2 * rate, 1] += 0.3 * rng.standard_normal(2 * rate)  # "a" speaks on B
    audio[2 * rate :, 0] += 0.3 * rng.standard_normal(2 * rate)  # "b" speaks on A
    segments = [Segment("f", "a", 0.0, 2.0, "x"), Segment("f", "b", 2.0, 4.0, "y")]
    assert channel_speakers(audio, rate, segments) == {"a": "B", "b": "A"}
    # Both loud on the same channel: no attribution rather than a wrong one.
    assert channel_speakers(audio[:, ::-1] * [1, 0], rate, segments) == {}


def test_pyannote_labels_are_renamed_to_the_transcripts_speakers(tmp_path):
    sample = tmp_path / "tree" / "pyannote" / "audio" / "sample"
    sample.mkdir(parents=True)
    (sample / "sample.wav").write_bytes(encode_wav(np.zeros(16000 * 4, np.float32), 16000))
    rttm = "SPEAKER sample 1 {} <NA> <NA> {} <NA> <NA>\n"
    (sample / "sample.rttm").write_text(rttm.format("0.50 1.00", "spk_a") + rttm.format("2.00 1.50", "spk_b"))
    (sample / "sample.stm").write_text(
        "sample 1 Carol 0.55 1.45 Hi there.\nsample 1 Dave 2.1 3.4 Hello Carol.\n"
    )
    empty = tmp_path / "none"
    manifest, skipped = build_evalsets(
        tmp_path / "out", download=False, cache_dir=empty, pyannote=tmp_path / "tree",
        transcriber_dir=empty, pocketsphinx_dir=empty,
    )  # fmt: skip
    (record,) = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert record["speakers"] == ["Carol", "Dave"] and record["duration"] == 4.0
    turns = read_rttm(tmp_path / "out" / record["rttm"])
    assert [(t.file, t.speaker, t.start) for t in turns] == [
        ("pyannote-sample", "Carol", 0.5),
        ("pyannote-sample", "Dave", 2.0),
    ]
    assert [s.text for s in read_stm(tmp_path / "out" / record["stm"])] == ["Hi there.", "Hello Carol."]
    assert len(skipped) == 3 and all("get it with" in line for line in skipped)


def test_missing_sources_are_skipped_with_how_to_get_them(tmp_path):
    empty = tmp_path / "none"
    manifest, skipped = build_evalsets(
        tmp_path / "out", download=False, cache_dir=empty, transcriber_dir=empty, pocketsphinx_dir=empty
    )
    assert manifest.read_text() == ""
    hints = " ".join(skipped)
    assert "pip download --no-deps" in hints and "apt-get install" in hints and len(skipped) == 4
    assert "evaluation only" in (tmp_path / "out" / "README.md").read_text().lower()


def test_the_command_writes_the_manifest_and_reports_skips(tmp_path, capsys):
    empty = str(tmp_path / "none")
    argv = ["evalsets", "--out", str(tmp_path / "out"), "--no-download", "--cache", empty]
    argv += ["--transcriber-dir", empty, "--pocketsphinx-dir", empty]
    assert data_cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "out" / "manifest.jsonl")
    assert err.count("# skipped") == 4


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """The evaluation sets from whatever is installed or cached here, without downloading."""
    out = tmp_path_factory.mktemp("evalsets")
    manifest, skipped = build_evalsets(out, download=False)
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    if not records:
        pytest.skip("no evaluation source is installed here: " + "; ".join(skipped))
    return out, records


def test_manifest_items_are_well_formed(installed):
    out, records = installed
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert r["kind"] in KINDS and r["use"] == USE and r["licence"] and r["source"]["package"]
        assert isinstance(r["speakers"], list) and r["duration"] > 0
        if r["kind"] == "face-video":
            assert (out / r["video"]).is_file() and r["fps"] > 0 and r["frames"] > 0 and r["face"]
            assert abs(r["frames"] / r["fps"] - r["duration"]) < 0.5
            continue
        info = sf.info(out / r["audio"])
        assert (info.samplerate, info.channels) == (r["sample_rate"], r["channels"])
        assert abs(info.frames / info.samplerate - r["duration"]) < 1e-3
        assert r["speakers"] and (r["kind"] == "multi-talker") == (len(r["speakers"]) > 1)
        assert r["transcript"]
        for path in r.get("channel_audio", {}).values():
            assert sf.info(out / path).frames == info.frames


def test_label_segments_fit_their_recording(installed):
    out, records = installed
    labelled = [r for r in records if r["rttm"]]
    if not labelled:
        pytest.skip("no labelled multi-talker recording is installed here")
    for r in labelled:
        for segments in (read_rttm(out / r["rttm"]), read_stm(out / r["stm"])):
            assert segments
            for s in segments:
                assert s.file == r["id"] and s.speaker in r["speakers"]
                assert 0.0 <= s.start < s.end <= r["duration"] + 1e-3
        stm_lines = (out / r["stm"]).read_text().splitlines()
        channels = {line.split()[1] for line in stm_lines}
        assert channels == ({"A", "B"} if "channel_speakers" in r else {"1"})
