"""Speech -> face-motion pairs: phone timings -> visemes -> ARKit-52 curves at 25 fps, in 3DMEAD-like layout.

Visemes are the 15 of Meta's Oculus Lipsync reference, hand-set ARKit poses (shared.rigs.arkit_poses).
Coarticulation follows Cohen & Massaro (1993): every phone pulls the face towards its pose with a dominance
that is flat over the middle of the phone and decays exponentially outside it; the face is the
dominance-weighted mean, so lip closures (p, b, m, f, v) win over neighbours and vowels peak inside their
own interval. Loudness scales the jaw. Emotions add EMFACS prototypes (Ekman & Friesen; AU -> ARKit), scaled
by intensity level; each identity has a seeded style (articulation, asymmetry, resting face, blink rate).
"""

from __future__ import annotations

import re
import shutil
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from shared.rigs.arkit import ARKIT_INDEX, ARKIT_SHAPES
from shared.rigs.arkit_poses import (
    EMOTION_POSES,
    VISEME_POSES,
    VOWEL_VISEMES,
    phone_visemes,
    pose,
    pose_vector,
)

if TYPE_CHECKING:
    from shared.rigs.flame import FlameModel

FPS = 25
SAMPLE_RATE = 16000
EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprised", "fear", "disgusted", "angry", "contempt")
LEVELS: tuple[int, ...] = (1, 2, 3)
LEVEL_SCALE = {1: 0.4, 2: 0.7, 3: 1.0}


class PhoneTiming(Protocol):
    """shared.synth.tts.base.Timing, or anything with the same fields (seconds)."""

    label: str
    start: float
    end: float


# (strength, decay per second): closures must be reached, vowels blend, silence lets go slowly.
_DOMINANCE = {
    "PP": (2.5, 30.0),
    "FF": (2.0, 30.0),
    "sil": (0.6, 10.0),
    **dict.fromkeys(VOWEL_VISEMES, (1.0, 16.0)),
}
_CONSONANT_DOMINANCE = (0.8, 22.0)
_IDENTITY = re.compile(r"[A-Za-z0-9-]+")


@dataclass(frozen=True)
class FaceStyle:
    """Who speaks and how: identity (letters, digits, '-'), one of EMOTIONS, intensity level 1..3."""

    identity: str = "id000"
    emotion: str = "neutral"
    level: int = 1

    def __post_init__(self) -> None:
        if not _IDENTITY.fullmatch(self.identity):
            raise ValueError(
                f"identity {self.identity!r}: use letters, digits and '-' (it is part of file names)"
            )
        if self.emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {self.emotion!r}; known: {', '.join(EMOTIONS)}")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level}")


def visemes(phones: Sequence[PhoneTiming]) -> list[tuple[str, float, float]]:
    """(viseme, start, end) spans: diphthongs split in two, 'h' shaped like the phone after it."""
    resolved = [phone_visemes(p.label) for p in phones]
    spans = []
    for i, (phone, names) in enumerate(zip(phones, resolved, strict=True)):
        if not names:
            names = next((n[:1] for n in resolved[i + 1 :] if n), ("sil",))
        if len(names) == 2:
            middle = phone.start + 0.55 * (phone.end - phone.start)
            spans += [(names[0], phone.start, middle), (names[1], middle, phone.end)]
        else:
            spans.append((names[0], phone.start, phone.end))
    return spans


def speech_to_arkit(
    waveform: np.ndarray,
    sample_rate: int,
    phones: Sequence[PhoneTiming],
    style: FaceStyle | None = None,
    seed: int = 0,
    fps: int = FPS,
) -> np.ndarray:
    """ARKit weights [T, 52] (float32, 0..1, ARKIT_SHAPES order), T = round(audio seconds * fps).

    Deterministic for (inputs, style, seed); the identity's style depends on the identity only.
    """
    style = style or FaceStyle()
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    frames = max(1, round(waveform.shape[0] / sample_rate * fps))
    times = (np.arange(frames) + 0.5) / fps
    identity = _identity_style(style.identity)
    rng = np.random.default_rng(
        [seed, zlib.crc32(style.identity.encode()), EMOTIONS.index(style.emotion), style.level]
    )

    curves = _coarticulate(visemes(phones), times) * identity.articulation
    curves *= 1.0 + rng.normal(0.0, 0.05, size=len(ARKIT_SHAPES))  # this take's own articulation
    curves[:, ARKIT_INDEX["jawOpen"]] *= _loudness_gain(waveform, sample_rate, times, fps)
    emotion = pose_vector(EMOTION_POSES[style.emotion]) * LEVEL_SCALE[style.level] * identity.expressivity
    # Expressions breathe: a slow +-10% swell at a per-take rate and phase.
    swell = 1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * times + rng.uniform(0, 2 * np.pi))
    curves += swell[:, None] * emotion + identity.rest
    blink = _blinks(times, identity.blink_interval_s, rng)
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        curves[:, ARKIT_INDEX[name]] = np.maximum(curves[:, ARKIT_INDEX[name]], blink)
    return np.clip(curves, 0.0, 1.0).astype(np.float32)


def _coarticulate(spans: list[tuple[str, float, float]], times: np.ndarray) -> np.ndarray:
    """[T, 52]: the dominance-weighted mean of the spans' poses; a weak rest pull where nothing is said."""
    if not spans:
        return np.zeros((times.size, len(ARKIT_SHAPES)))
    names, starts, ends = zip(*spans, strict=True)
    starts, ends = np.asarray(starts), np.asarray(ends)
    strength, decay = np.array([_DOMINANCE.get(n, _CONSONANT_DOMINANCE) for n in names]).T
    centre, plateau = (starts + ends) / 2, 0.3 * (ends - starts)
    distance = np.maximum(np.abs(times[:, None] - centre[None]) - plateau[None], 0.0)
    dominance = strength[None] * np.exp(-decay[None] * distance)  # [T, N]
    poses = np.stack([pose_vector(VISEME_POSES[n]) for n in names])  # [N, 52]
    return dominance @ poses / (dominance.sum(axis=1, keepdims=True) + 0.02)


def _loudness_gain(waveform: np.ndarray, sample_rate: int, times: np.ndarray, fps: int) -> np.ndarray:
    """[T] jaw gain 0.8..1.2 from each frame's RMS relative to the utterance's loud frames."""
    half = max(1, sample_rate // (2 * fps))
    centres = np.clip((times * sample_rate).astype(int), 0, max(waveform.size - 1, 0))
    padded = np.pad(waveform.astype(np.float64) ** 2, (half, half))
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    rms = np.sqrt((cumulative[centres + 2 * half] - cumulative[centres]) / (2 * half))
    loud = np.percentile(rms, 95) if rms.size else 0.0
    if loud <= 1e-6:
        return np.ones_like(times)
    return 0.8 + 0.4 * np.sqrt(np.clip(rms / loud, 0.0, 1.0))


def _blinks(times: np.ndarray, mean_interval_s: float, rng: np.random.Generator) -> np.ndarray:
    """[T] eyeBlink: close in 80 ms, hold 40 ms, open in 160 ms, at gamma-distributed intervals."""
    out = np.zeros_like(times)
    at = rng.uniform(0.3, mean_interval_s)
    while at < times[-1] + 0.5:
        shape = np.interp(times - at, [-0.08, 0.0, 0.04, 0.2], [0.0, 1.0, 1.0, 0.0], left=0.0, right=0.0)
        out = np.maximum(out, shape * rng.uniform(0.85, 1.0))
        at += max(0.4, rng.gamma(4.0, mean_interval_s / 4.0))
    return out


@dataclass(frozen=True)
class _IdentityStyle:
    articulation: np.ndarray  # [52] gain on the speech shapes
    rest: np.ndarray  # [52] the resting face
    expressivity: float  # gain on emotions
    blink_interval_s: float


def _identity_style(identity: str) -> _IdentityStyle:
    """A person's constant style, seeded by the identity name alone."""
    rng = np.random.default_rng(zlib.crc32(identity.encode()))
    articulation = np.exp(rng.normal(0.0, 0.15)) * np.exp(rng.normal(0.0, 0.05, size=len(ARKIT_SHAPES)))
    skew = rng.normal(0.0, 0.08)  # one side of the face moves more
    for name, i in ARKIT_INDEX.items():
        articulation[i] *= 1 + skew if name.endswith("Left") else 1 - skew if name.endswith("Right") else 1
    rest = pose(
        mouthSmile_=rng.uniform(0, 0.08), browInnerUp=rng.uniform(0, 0.06), eyeSquint_=rng.uniform(0, 0.08)
    )
    return _IdentityStyle(
        articulation=articulation,
        rest=pose_vector(rest),
        expressivity=float(np.exp(rng.normal(0.0, 0.15))),
        blink_interval_s=float(rng.uniform(2.5, 5.0)),
    )


def sequence_path(root: Path, style: FaceStyle, sentence: int) -> Path:
    """<root>/<identity>/<emotion>/level_<k>/<sentence:03d>; the files add .npy, .wav and .flame53.npy."""
    return Path(root) / style.identity / style.emotion / f"level_{style.level}" / f"{sentence:03d}"


def write_pair(
    root: Path,
    style: FaceStyle,
    sentence: int,
    curves: np.ndarray,
    waveform: np.ndarray,
    sample_rate: int,
    flame: FlameModel | None = None,
) -> Path:
    """Write <stem>.npy (ARKit [T, 52] float32 at 25 fps), <stem>.wav (16 kHz) and, given a FLAME model,
    <stem>.flame53.npy (ProbTalk3D's [T, 53], see shared.rigs.mappings.arkit_to_flame53). Returns the stem."""
    from shared.media import encode_wav, resample

    stem = sequence_path(root, style, sentence)
    stem.parent.mkdir(parents=True, exist_ok=True)
    curves = np.asarray(curves, dtype=np.float32)
    np.save(stem.with_suffix(".npy"), curves)
    stem.with_suffix(".wav").write_bytes(
        encode_wav(resample(waveform, sample_rate, SAMPLE_RATE), SAMPLE_RATE)
    )
    if flame is not None:
        from shared.rigs.mappings import arkit_to_flame53

        np.save(
            stem.parent / f"{stem.name}.flame53.npy", arkit_to_flame53(curves, flame.arkit_expression_map)
        )
    return stem


def build_dataset(
    root: Path,
    sentences: Sequence[str],
    voices: Mapping[str, str],
    emotions: Sequence[str] = EMOTIONS,
    levels: Sequence[int] = LEVELS,
    seed: int = 0,
    flame: FlameModel | None = None,
) -> list[Path]:
    """Speak every sentence with each identity's voice ({identity: voice id}, see shared.voices) and write
    one pair per emotion and level (neutral at level 1 only, as in MEAD). Returns the stems written."""
    from shared.voices import synthesize

    stems = []
    for identity, voice in voices.items():
        for number, text in enumerate(sentences, start=1):
            speech = synthesize(text, voice, sample_rate=SAMPLE_RATE)
            for emotion in emotions:
                for level in (1,) if emotion == "neutral" else levels:
                    style = FaceStyle(identity, emotion, level)
                    take_seed = zlib.crc32(f"{seed}:{number}".encode())
                    curves = speech_to_arkit(
                        speech.waveform, speech.sample_rate, speech.phones, style, take_seed
                    )
                    stems.append(
                        write_pair(root, style, number, curves, speech.waveform, speech.sample_rate, flame)
                    )
    return stems


def export_flat(root: Path, out: Path, layout: str = "arkit-52") -> int:
    """Copy a dataset into face-vqvae's flat layout: out/param/<id>_<sentence>_<emotion>_<level - 1>.npy and
    out/wav/<same>.wav; layout "arkit-52" or "flame-53" picks the motion files. Returns pairs copied."""
    if layout not in ("arkit-52", "flame-53"):
        raise ValueError(f"layout must be 'arkit-52' or 'flame-53', got {layout!r}")
    suffix = ".flame53.npy" if layout == "flame-53" else ".npy"
    (Path(out) / "param").mkdir(parents=True, exist_ok=True)
    (Path(out) / "wav").mkdir(parents=True, exist_ok=True)
    count = 0
    for motion in sorted(Path(root).glob(f"*/*/level_*/*{suffix}")):
        sentence = motion.name.split(".")[0]
        if motion.name != f"{sentence}{suffix}":
            continue
        identity, emotion, level = (
            motion.parts[-4],
            motion.parts[-3],
            int(motion.parts[-2].removeprefix("level_")),
        )
        key = f"{identity}_{sentence}_{emotion}_{level - 1}"
        shutil.copyfile(motion, Path(out) / "param" / f"{key}.npy")
        shutil.copyfile(motion.parent / f"{sentence}.wav", Path(out) / "wav" / f"{key}.wav")
        count += 1
    return count
