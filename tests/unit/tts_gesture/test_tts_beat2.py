"""The BEAT2 loader on a small BEAT2-shaped folder made here: split, utterance cuts, alignment, motion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tts_gesture.config import FastTalkerConfig
from tts_gesture.data import beat2
from tts_gesture.text import text_to_sequence

from shared.rigs.rotations import axis_angle_to_rot6d
from shared.rigs.smplx import SMPLX_JOINTS, SMPLX_PARENTS, SmplxModel
from shared.synth.gestures import textgrid
from shared.synth.tts.base import Timing

RATE, FRAMES = 16000, 120
WORDS = [  # (word, start, end, its CMUdict phones)
    ("hello", 0.3, 0.7, 4),
    ("world", 0.75, 1.2, 4),
    ("good", 1.8, 2.1, 3),
    ("morning", 2.1, 2.6, 6),
    ("thank", 3.0, 3.3, 4),
    ("you", 3.3, 3.6, 2),
]
MOVING_FROM = 60  # the body walks from this frame on


def tiny_smplx() -> SmplxModel:
    """One vertex per joint, regressed one to one; rest joints 10 cm apart along +x."""
    joints = len(SMPLX_JOINTS)
    rest = np.zeros((joints, 3))
    rest[:, 0] = 0.1 * np.arange(joints)
    return SmplxModel(
        v_template=rest,
        shapedirs=np.zeros((joints, 3, 300)),
        exprdirs=np.zeros((joints, 3, 100)),
        posedirs=np.zeros((joints, 3, 9 * (joints - 1))),
        j_regressor=np.eye(joints),
        parents=np.array(SMPLX_PARENTS),
        weights=np.eye(joints),
        faces=np.zeros((0, 3), np.int32),
    )


def write_recording(folder: Path, sid: str) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(4 * RATE) / RATE
    wave = 0.1 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 2 * t) > 0) + 0.01 * rng.normal(
        size=t.size
    )
    (folder / "wave16k").mkdir(exist_ok=True)
    sf.write(folder / "wave16k" / f"{sid}.wav", wave.astype(np.float32), RATE)
    words = [Timing(w, s, e) for w, s, e, _ in WORDS]
    phones = [
        Timing(f"P{k}", s + k * (e - s) / n, s + (k + 1) * (e - s) / n)
        for _, s, e, n in WORDS
        for k in range(n)
    ]
    (folder / "textgrid").mkdir(exist_ok=True)
    grid = textgrid({"scott - words": words, "scott - phones": phones}, 4.0)  # MFA's speaker-prefixed tiers
    (folder / "textgrid" / f"{sid}.TextGrid").write_text(grid, encoding="utf-8")
    expressions = np.zeros((FRAMES, 100), np.float32)
    expressions[:, 0] = np.arange(FRAMES)  # marks each frame, to check where utterances cut the motion
    trans = np.zeros((FRAMES, 3), np.float32)
    trans[MOVING_FROM:, 0] = 0.05 * np.arange(FRAMES - MOVING_FROM)  # 5 cm a frame: the feet leave the ground
    poses = np.zeros((FRAMES, 165), np.float32)
    poses[:, 18 * 3 + 2] = 0.5  # left elbow bent about z
    (folder / "smplxflame_30").mkdir(exist_ok=True)
    np.savez(
        folder / "smplxflame_30" / f"{sid}.npz",
        poses=poses,
        expressions=expressions,
        trans=trans,
        betas=np.zeros(300, np.float32),
        mocap_frame_rate=30,
    )


@pytest.fixture
def beat2_folder(tmp_path: Path) -> Path:
    rows = [
        "id,type",
        "2_scott_0_1_1,train",
        "2_scott_0_2_2,test",
        "1_wayne_0_1_1,train",
        "2_scott_0_3_3,val",
    ]
    (tmp_path / "train_test_split.csv").write_text("\n".join(rows) + "\n")
    write_recording(tmp_path, "2_scott_0_1_1")
    return tmp_path


def test_split_ids_select_type_and_speaker(beat2_folder: Path) -> None:
    assert beat2.split_ids(beat2_folder, "train") == ["2_scott_0_1_1"]
    assert beat2.split_ids(beat2_folder, "test") == ["2_scott_0_2_2"]
    assert beat2.split_ids(beat2_folder, "train", speakers=(1, 2)) == ["2_scott_0_1_1", "1_wayne_0_1_1"]


def test_phrase_spans_split_at_pauses_and_join_within_max_seconds() -> None:
    words = [Timing(w, s, e) for w, s, e, _ in WORDS] + [Timing("", 3.6, 4.0)]
    labels = [[[w.label for w in phrase] for phrase in u] for u in beat2.phrase_spans(words, 0.3, 10.0)]
    assert labels == [[["hello", "world"], ["good", "morning"], ["thank", "you"]]]
    short = beat2.phrase_spans(words, 0.3, 1.5)  # "hello world" + "good morning" would span 2.3 s
    assert [[[w.label for w in p] for p in u] for u in short] == [
        [["hello", "world"]],
        [["good", "morning"]],
        [["thank", "you"]],
    ]
    assert len(beat2.phrase_spans(words, 0.7, 10.0)[0]) == 1  # no silence of 0.7 s: one phrase


def test_foot_contact_is_emages_one_centimetre_rule() -> None:
    joints = np.zeros((4, 4, 3))
    joints[2:, 1, 0] = 0.02  # foot 1 steps 2 cm between frames 1 and 2
    joints[3, 2, 0] = 0.005  # foot 2 slides 5 mm: still in contact
    expected = np.ones((4, 4))
    expected[1, 1] = 0.0
    np.testing.assert_array_equal(beat2.foot_contact(joints), expected)


def test_smplx_joints_forward_kinematics() -> None:
    model = tiny_smplx()
    poses = np.zeros((1, len(SMPLX_JOINTS), 3))
    poses[0, 0, 2] = np.pi / 2  # pelvis turned 90 degrees about z: +x offsets point along +y
    joints = beat2.smplx_joints(model, poses, np.zeros(300), np.array([[0.0, 0.0, 1.0]]))
    spine1 = SMPLX_JOINTS.index("spine1")  # rest offset from the pelvis: 0.3 m along x
    np.testing.assert_allclose(joints[0, 0], [0.0, 0.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(joints[0, spine1], [0.0, 0.3, 1.0], atol=1e-9)


def test_load_beat2_gives_aligned_utterances(beat2_folder: Path) -> None:
    audio = FastTalkerConfig.from_yaml("tiny").audio  # 100 mel frames a second
    (item,) = beat2.load_beat2(beat2_folder, audio, tiny_smplx(), "train")
    assert (item.id, item.speaker) == ("2_scott_0_1_1-000", "scott")
    assert item.text == "hello world, good morning, thank you"
    np.testing.assert_array_equal(item.phonemes, text_to_sequence(item.text, "en"))
    # 0.3 s (first word) to 3.8 s (last word + 0.2 s): 350 mel frames, all given to phonemes.
    assert item.mel.shape == (350, audio.num_mels) and item.durations.sum() == 350
    assert item.onsets.shape == (350,) and item.pitch.shape == item.energy.shape == item.phonemes.shape
    # The comma's pause takes the 0.6 s silence after "world" (frames 90 to 150 from the start).
    assert item.durations[8] == 60
    # Motion frames 9 (0.3 s) to 113.
    np.testing.assert_array_equal(item.expression[:, 0], np.arange(9, 114))
    assert item.pose.shape == (105, 330) and item.translation.shape == (105, 3)
    elbow = SMPLX_JOINTS.index("left_elbow")
    np.testing.assert_allclose(
        item.pose[0, elbow * 6 : elbow * 6 + 6], axis_angle_to_rot6d(np.array([0, 0, 0.5]))
    )
    np.testing.assert_allclose(item.pose[0, :6], [1, 0, 0, 0, 1, 0])
    contact = item.foot_contact
    assert contact.shape == (105, 4)
    assert contact[: MOVING_FROM - 9].all() and not contact[MOVING_FROM - 9 : -1].any()


def test_load_beat2_cuts_at_pauses_when_an_utterance_would_be_too_long(beat2_folder: Path) -> None:
    audio = FastTalkerConfig.from_yaml("tiny").audio
    items = list(beat2.load_beat2(beat2_folder, audio, tiny_smplx(), max_seconds=1.5))
    assert [u.text for u in items] == ["hello world", "good morning", "thank you"]
    assert [u.id[-3:] for u in items] == ["000", "001", "002"]
    for u in items:
        assert u.durations.sum() == u.mel.shape[0]
    # "good morning" ends at 2.6 s; 0.2 s of the silence after it is kept: 1.8 to 2.8 s.
    assert items[1].mel.shape[0] == 100
    np.testing.assert_array_equal(items[1].expression[:, 0], np.arange(54, 84))
