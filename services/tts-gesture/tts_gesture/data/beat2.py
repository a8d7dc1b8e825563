"""BEAT2 (PantoMatrix, `beat_english_v2.0.0`) as per-utterance `TrainingItem`s in the SMPL-X layout, for users
who have the data set (Orate ships none of it).

Layout, as PantoMatrix's loaders read it (EMAGE `dataloaders/beat_sep_lower.py`, `datasets/beat2.py`):
smplxflame_30/<id>.npz with poses [T, 165] axis-angle (55 SMPL-X joints), expressions [T, 100] (FLAME),
trans [T, 3] (m), betas [300]; wave16k/<id>.wav; textgrid/<id>.TextGrid (Montreal Forced Aligner: tiers
"words" and "phones"); train_test_split.csv (id, type: train / val / test / additional). Ids are
"<speaker number>_<name>_..."; EMAGE's BEAT2 setting trains and tests speaker 2 (scott) only.

A recording (about a minute of speech) is cut into utterances at silences of at least `pause` seconds
between words; consecutive phrases are joined, with a comma between them so the g2p's pause takes the
silence, while the utterance stays within `max_seconds`. Each keeps `tail` seconds of the silence after its
last word. Foot contact is EMAGE's: a foot joint (left and right ankle and toe: SMPL-X joints 7, 8, 10, 11)
touches the ground in a frame when it moves less than 1 cm to the next frame (the last frame counts as
still); joint positions need the user's SMPL-X model (shared.rigs.smplx), as EMAGE's do.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from shared.rigs.open_rig import Skeleton
from shared.rigs.rotations import axis_angle_to_matrix
from shared.rigs.smplx import SMPLX_JOINTS, SmplxModel, pose_to_rot6d
from shared.synth.bvh import open_rig_joints
from shared.synth.gestures import read_textgrid
from shared.synth.tts.base import Timing
from tts_gesture.config import MOTION_FPS, AudioConfig
from tts_gesture.data import AlignmentError, TrainingItem, align_durations, frame_targets, phoneme_means
from tts_gesture.text import G2PError

EMAGE_SPEAKERS = (2,)  # EMAGE's BEAT2 setting (`training_speakers: [2]`, beat2_s20_l64_speaker2.json)
FOOT_JOINTS = (7, 8, 10, 11)  # SMPL-X left/right ankle, left/right foot (EMAGE's foot-contact joints)
CONTACT_METRES = 0.01  # per-frame displacement below which a foot is in contact (EMAGE)


def split_ids(folder: Path, split: str, speakers: Sequence[int] = EMAGE_SPEAKERS) -> list[str]:
    """Ids of one split (train, val, test, additional) of the given speaker numbers, in file order."""
    with (Path(folder) / "train_test_split.csv").open(encoding="utf-8") as f:
        return [
            row["id"]
            for row in csv.DictReader(f)
            if row["type"] == split and int(row["id"].split("_")[0]) in speakers
        ]


def phrase_spans(
    words: Sequence[Timing], pause: float = 0.3, max_seconds: float = 10.0
) -> list[list[list[Timing]]]:
    """Utterances as lists of phrases (lists of spoken words): phrases split at silences >= pause, joined
    while the utterance spans at most max_seconds (a longer phrase stays one utterance)."""
    spoken = [w for w in words if w.label.strip()]
    phrases: list[list[Timing]] = []
    for w in spoken:
        if phrases and w.start - phrases[-1][-1].end < pause:
            phrases[-1].append(w)
        else:
            phrases.append([w])
    utterances: list[list[list[Timing]]] = []
    for phrase in phrases:
        if utterances and phrase[-1].end - utterances[-1][0][0].start <= max_seconds:
            utterances[-1].append(phrase)
        else:
            utterances.append([phrase])
    return utterances


def foot_contact(joints: np.ndarray) -> np.ndarray:
    """[T, 4, 3] foot joint positions (m) -> [T, 4] contact in {0, 1} (EMAGE's rule, module docstring)."""
    step = np.zeros(joints.shape[:2])
    step[:-1] = np.linalg.norm(joints[1:] - joints[:-1], axis=-1)
    return (step < CONTACT_METRES).astype(np.float32)


def smplx_joints(model: SmplxModel, poses: np.ndarray, betas: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """SMPL-X joint positions [T, 55, 3] for axis-angle poses [T, 55, 3]: forward kinematics from the rest
    joints of the betas' body (expression only moves face vertices, so it is left out)."""
    count = min(len(betas), model.shapedirs.shape[2])  # BEAT2 stores 300 betas; SMPL-X 1.0 has 10
    shaped = model.v_template + model.shapedirs[:, :, :count] @ np.asarray(betas[:count], np.float64)
    skeleton = Skeleton(SMPLX_JOINTS, model.parents, model.j_regressor @ shaped)
    return open_rig_joints(axis_angle_to_matrix(np.asarray(poses, np.float64)), skeleton, np.asarray(trans))


def load_beat2(
    folder: str | Path,
    audio: AudioConfig,
    smplx: SmplxModel,
    split: str = "train",
    speakers: Sequence[int] = EMAGE_SPEAKERS,
    **spans: float,
) -> Iterator[TrainingItem]:
    """Utterances of one split; an utterance whose words the g2p cannot read or align is skipped. `spans`
    go to phrase_spans (pause, max_seconds) and read_recording (tail)."""
    folder = Path(folder)
    for sid in split_ids(folder, split, speakers):
        yield from read_recording(folder, sid, audio, smplx, **spans)


def read_recording(
    folder: Path,
    sid: str,
    audio: AudioConfig,
    smplx: SmplxModel,
    pause: float = 0.3,
    max_seconds: float = 10.0,
    tail: float = 0.2,
) -> Iterator[TrainingItem]:
    """The utterances of one recording (see the module docstring), ids "<recording id>-<k>"."""
    wave, rate = sf.read(folder / "wave16k" / f"{sid}.wav", dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    tiers = read_textgrid((folder / "textgrid" / f"{sid}.TextGrid").read_text(encoding="utf-8"))
    words, phones = _tier(tiers, "words"), _tier(tiers, "phones")
    with np.load(folder / "smplxflame_30" / f"{sid}.npz", allow_pickle=False) as npz:
        poses = npz["poses"].reshape(len(npz["poses"]), len(SMPLX_JOINTS), 3)
        expressions, trans, betas = npz["expressions"], npz["trans"], npz["betas"]
    contact = foot_contact(smplx_joints(smplx, poses, betas, trans)[:, FOOT_JOINTS])
    rot6d = pose_to_rot6d(poses).astype(np.float32)
    spoken = [w for w in words if w.label.strip()]
    for k, phrases in enumerate(phrase_spans(words, pause, max_seconds)):
        first, last = phrases[0][0], phrases[-1][-1]
        following = next((w.start for w in spoken if w.start >= last.end), float("inf"))
        end = min(last.end + tail, following, len(wave) / rate)
        text = ", ".join(" ".join(w.label for w in phrase) for phrase in phrases)
        targets = frame_targets(wave[round(first.start * rate) : round(end * rate)], rate, audio)
        try:
            phonemes, durations = align_durations(
                text,
                [w for w in words if first.start <= w.start < end],
                [p for p in phones if first.start <= p.start < end],
                first.start,
                targets.mel.shape[0],
                audio.frame_rate,
            )
        except (AlignmentError, G2PError):
            continue
        motion = slice(round(first.start * MOTION_FPS), round(end * MOTION_FPS))
        yield TrainingItem(
            id=f"{sid}-{k:03d}",
            speaker=sid.split("_")[1],
            text=text,
            phonemes=phonemes,
            durations=durations,
            pitch=phoneme_means(targets.log_f0, durations),
            energy=phoneme_means(targets.energy, durations),
            mel=targets.mel,
            onsets=targets.onsets,
            pose=rot6d[motion],
            expression=expressions[motion].astype(np.float32),
            translation=trans[motion].astype(np.float32),
            foot_contact=contact[motion],
        )


def _tier(tiers: dict[str, list[Timing]], kind: str) -> list[Timing]:
    """The "words" or "phones" tier (the Montreal Forced Aligner prefixes a speaker: "scott - words")."""
    found = [timings for name, timings in tiers.items() if name.endswith(kind)]
    if not found:
        raise ValueError(f"the TextGrid has no {kind} tier (tiers: {', '.join(tiers)})")
    return found[0]
