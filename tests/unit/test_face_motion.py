"""Speech -> face-motion pairs: visemes, coarticulation timing, emotion and identity style, file layout."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from shared.rigs.arkit import ARKIT_INDEX
from shared.rigs.flame import FlameModel
from shared.synth.face_motion import (
    EMOTIONS,
    FPS,
    FaceStyle,
    build_dataset,
    export_flat,
    sequence_path,
    speech_to_arkit,
    visemes,
    write_pair,
)

RATE = 16000


@dataclass(frozen=True)
class Phone:
    label: str
    start: float
    end: float


# "pau b aa p iy m ow pau": vowels between lip closures, hand-timed.
PHONES = [
    Phone(*p)
    for p in [
        ("pau", 0.0, 0.2), ("b", 0.2, 0.28), ("aa", 0.28, 0.5), ("p", 0.5, 0.58), ("iy", 0.58, 0.76),
        ("m", 0.76, 0.86), ("ow", 0.86, 1.1), ("pau", 1.1, 1.4),
    ]
]  # fmt: skip
VOWELS = [p for p in PHONES if p.label in ("aa", "iy", "ow")]


def _speech(phones: list[Phone] = PHONES) -> np.ndarray:
    """Noise, loud in the vowels and quiet elsewhere, as long as the phones."""
    rng = np.random.default_rng(0)
    wave = rng.normal(0, 0.01, int(phones[-1].end * RATE)).astype(np.float32)
    for p in phones:
        if p.label in ("aa", "iy", "ow"):
            wave[int(p.start * RATE) : int(p.end * RATE)] *= 20
    return wave


def _curves(style: FaceStyle | None = None, seed: int = 0) -> np.ndarray:
    return speech_to_arkit(_speech(), RATE, PHONES, style or FaceStyle("id001"), seed=seed)


def test_output_is_frames_by_52_weights_at_25_fps():
    curves = _curves()
    assert curves.shape == (round(1.4 * FPS), 52) and curves.dtype == np.float32
    assert curves.min() >= 0.0 and curves.max() <= 1.0


def test_jaw_open_peaks_inside_the_vowels_and_lips_close_for_bilabials():
    curves = _curves(FaceStyle("id001", "neutral", 1))
    jaw, press = curves[:, ARKIT_INDEX["jawOpen"]], curves[:, ARKIT_INDEX["mouthPressLeft"]]
    times = (np.arange(len(jaw)) + 0.5) / FPS
    peaks = [i for i in range(1, len(jaw) - 1) if jaw[i] >= jaw[i - 1] and jaw[i] > jaw[i + 1]]
    assert len(peaks) == len(VOWELS)
    for i, vowel in zip(peaks, VOWELS, strict=True):
        assert vowel.start - 0.5 / FPS <= times[i] <= vowel.end + 0.5 / FPS, (vowel, times[i])
    for closure in ("b", "p", "m"):
        phone = next(p for p in PHONES if p.label == closure)
        frame = int((phone.start + phone.end) / 2 * FPS)
        assert press[frame] > 0.25 and jaw[frame] < 0.2
    assert jaw[0] < 0.05 and jaw[-1] < 0.05  # silence at both ends


def test_same_seed_same_curves_and_seed_or_identity_changes_them():
    np.testing.assert_array_equal(_curves(seed=3), _curves(seed=3))
    assert not np.array_equal(_curves(seed=3), _curves(seed=4))
    assert not np.array_equal(_curves(FaceStyle("id001")), _curves(FaceStyle("id002")))


@pytest.mark.parametrize(
    ("emotion", "shapes"),
    [
        ("happy", ("mouthSmileLeft", "cheekSquintRight")),
        ("sad", ("mouthFrownLeft", "browInnerUp")),
        ("surprised", ("browOuterUpLeft", "eyeWideRight")),
        ("fear", ("eyeWideLeft", "mouthStretchRight")),
        ("disgusted", ("noseSneerLeft", "mouthUpperUpRight")),
        ("angry", ("browDownLeft", "mouthPressRight")),
        ("contempt", ("mouthDimpleLeft",)),
    ],
)
def test_emotions_add_their_shapes_growing_with_intensity(emotion, shapes):
    neutral = _curves(FaceStyle("id001", "neutral", 1)).mean(axis=0)
    low, high = (_curves(FaceStyle("id001", emotion, level)).mean(axis=0) for level in (1, 3))
    for name in shapes:
        i = ARKIT_INDEX[name]
        assert neutral[i] + 0.05 < low[i] < high[i], name


def test_contempt_is_one_sided():
    curves = _curves(FaceStyle("id001", "contempt", 3)).mean(axis=0)
    assert curves[ARKIT_INDEX["mouthDimpleLeft"]] > curves[ARKIT_INDEX["mouthDimpleRight"]] + 0.2


def test_visemes_read_arpabet_and_ipa_split_diphthongs_and_shape_h_like_the_next_phone():
    spans = visemes(
        [Phone("hh", 0, 0.1), Phone("ay1", 0.1, 0.3), Phone("ʃ", 0.3, 0.4), Phone("oʊ", 0.4, 0.6)]
    )
    assert [s[0] for s in spans] == ["aa", "aa", "ih", "CH", "oh", "ou"]
    assert spans[1][2] == pytest.approx(0.1 + 0.55 * 0.2)
    assert [s[0] for s in visemes([Phone("ɜː", 0, 1), Phone("eː", 1, 2), Phone("?!", 2, 3)])] == [
        "RR",
        "E",
        "nn",
    ]


def test_style_is_validated():
    with pytest.raises(ValueError, match="identity"):
        FaceStyle("M003_x")
    with pytest.raises(ValueError, match="unknown emotion"):
        FaceStyle("M003", "bored")
    with pytest.raises(ValueError, match="level"):
        FaceStyle("M003", "happy", 4)
    assert len(EMOTIONS) == 8


def test_pairs_are_written_in_the_3dmead_layout_with_a_flame_export(tmp_path):
    style = FaceStyle("M003", "angry", 2)
    curves = _curves(style)
    flame = FlameModel(*(np.zeros(1),) * 8, arkit_expression_map=np.zeros((52, 50)))  # only the map is used
    stem = write_pair(tmp_path, style, 7, curves, _speech(), RATE, flame=flame)
    assert stem == sequence_path(tmp_path, style, 7) == tmp_path / "M003" / "angry" / "level_2" / "007"
    np.testing.assert_array_equal(np.load(stem.with_suffix(".npy")), curves)
    wave, rate = sf.read(stem.with_suffix(".wav"))
    assert rate == 16000 and abs(len(wave) / rate - len(curves) / FPS) <= 1 / FPS
    flame53 = np.load(stem.parent / "007.flame53.npy")
    assert flame53.shape == (len(curves), 53) and flame53[:, 50].max() > 0.05

    assert export_flat(tmp_path, tmp_path / "flat") == 1
    assert (tmp_path / "flat" / "param" / "M003_007_angry_1.npy").is_file()
    assert (tmp_path / "flat" / "wav" / "M003_007_angry_1.wav").is_file()
    assert export_flat(tmp_path, tmp_path / "flat53", layout="flame-53") == 1
    assert np.load(tmp_path / "flat53" / "param" / "M003_007_angry_1.npy").shape[1] == 53


@pytest.mark.skipif(
    importlib.util.find_spec("shared.voices") is None, reason="shared.voices is not there yet"
)
def test_end_to_end_from_text_with_an_offline_voice(tmp_path):
    from shared import voices

    available = [v for v in voices.available_voices() if v.startswith(("flite:", "festival:", "espeak:"))]
    if not available:
        pytest.skip("no offline voice installed (apt-get install flite)")
    stems = build_dataset(tmp_path, ["Hello there."], {"F001": available[0]}, emotions=("neutral", "happy"))
    assert [s.relative_to(tmp_path).as_posix() for s in stems] == [
        "F001/neutral/level_1/001",
        "F001/happy/level_1/001",
        "F001/happy/level_2/001",
        "F001/happy/level_3/001",
    ]
    curves = np.load(stems[0].with_suffix(".npy"))
    wave, rate = sf.read(stems[0].with_suffix(".wav"))
    assert curves.shape[1] == 52 and curves.shape[0] == round(len(wave) / rate * FPS)
    assert curves[:, ARKIT_INDEX["jawOpen"]].max() > 0.2
