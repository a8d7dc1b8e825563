"""The data studio's text + speech + gesture triples (`orate data gestures`, shared.synth.gestures): open-rig
motion (`openrig_30/*.npz`: poses_6d [T, 624], expressions [T, 52] ARKit), 16 kHz speech, TextGrids with
the voice's own word and phone timings, `train_test_split.csv`.

The audio is cut to start at the first word (the leading silence has no phoneme to belong to) and the
motion by the same time. The studio's figures stand in place (translation zero, legs at rest), so both feet
touch the ground in every frame.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from shared.synth.gestures import read_textgrid
from tts_gesture.config import MOTION_FPS, AudioConfig
from tts_gesture.data import AlignmentError, TrainingItem, align_durations, frame_targets, phoneme_means
from tts_gesture.layouts import FOOT_CONTACTS
from tts_gesture.text import G2PError


def studio_speaker(voice: str) -> str:
    """The speaker name a studio voice id trains: "flite:slt" -> "flite-slt"."""
    return voice.replace(":", "-", 1)


def studio_voice(speaker: str) -> str:
    """The offline voice id of a studio speaker name: "flite-slt" -> "flite:slt"."""
    return speaker.replace("-", ":", 1)


def split_ids(folder: Path) -> dict[str, str]:
    with (folder / "train_test_split.csv").open(encoding="utf-8") as f:
        return {row["id"]: row["type"] for row in csv.DictReader(f)}


def load_studio(folder: str | Path, audio: AudioConfig, split: str | None = None) -> Iterator[TrainingItem]:
    """Utterances of a studio folder (of one split: "train" or "test", or all); an item whose recorded
    words do not match the g2p's words, or whose text the g2p cannot read, is skipped."""
    folder = Path(folder)
    splits = split_ids(folder)
    for line in (folder / "gestures.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if split is not None and splits.get(record["id"]) != split:
            continue
        try:
            yield read_sequence(folder, record, audio)
        except (AlignmentError, G2PError):
            continue


def read_sequence(folder: Path, record: dict, audio: AudioConfig) -> TrainingItem:
    sid = record["id"]
    wave, rate = sf.read(folder / "wave16k" / f"{sid}.wav", dtype="float32")
    tiers = read_textgrid((folder / "textgrid" / f"{sid}.TextGrid").read_text(encoding="utf-8"))
    words = [w for w in tiers["words"] if w.label.strip()]
    if not words:
        raise AlignmentError("no words")
    start = words[0].start
    targets = frame_targets(wave[int(round(start * rate)) :], rate, audio)
    frames = targets.mel.shape[0]
    phonemes, durations = align_durations(
        record["text"], tiers["words"], tiers["phones"], start, frames, audio.frame_rate
    )
    motion = np.load(folder / "openrig_30" / f"{sid}.npz")
    first = int(round(start * MOTION_FPS))
    pose = motion["poses_6d"][first:].astype(np.float32)
    return TrainingItem(
        id=sid,
        speaker=studio_speaker(record["voice"]),
        text=record["text"],
        phonemes=phonemes,
        durations=durations,
        pitch=phoneme_means(targets.log_f0, durations),
        energy=phoneme_means(targets.energy, durations),
        mel=targets.mel,
        onsets=targets.onsets,
        pose=pose,
        expression=motion["expressions"][first:].astype(np.float32),
        translation=motion["trans"][first:].astype(np.float32),
        foot_contact=np.ones((pose.shape[0], FOOT_CONTACTS), dtype=np.float32),
    )
