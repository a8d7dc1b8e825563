"""Training data: one `TrainingItem` type for every source (the data studio's open-rig triples, BEAT2), the
alignment of g2p phonemes to a recording's word and phone timings, the acoustic targets, and batching.

Targets follow FastSpeech2 (ming024's preprocessor): phoneme durations in mel frames from forced-alignment
timings, and pitch and energy averaged per phoneme (`phoneme_level`), normalised per speaker to z-scores.
Pitch here is YIN's F0 (librosa) on frames that look voiced (energy above a floor and a low zero-crossing
rate) instead of WORLD's DIO + StoneMask, which no wheel here ships; energy is the L2 norm of each STFT
frame's magnitude, as upstream. Onsets are `librosa.onset.onset_detect` frames of the same analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import librosa
import numpy as np
import soxr
import torch

from shared.synth.tts.base import Timing
from tts_gesture.audio import mel_spectrogram
from tts_gesture.batch import Batch
from tts_gesture.config import AudioConfig
from tts_gesture.model.frame_rates import motion_frames
from tts_gesture.text.english import english_words
from tts_gesture.text.symbols import PAUSE, SYMBOL_TO_ID


class AlignmentError(ValueError):
    """A recording's words do not match the text's g2p words: the utterance is left out of training."""


@dataclass
class TrainingItem:
    """One training item. Per phoneme: phonemes (ids), durations (mel frames), pitch (mean log F0, NaN when
    no frame is voiced) and energy (mean); per mel frame: mel [T, M] (log), onsets [T]; per 30 fps frame:
    pose [Tm, J*6] (rot6d), expression [Tm, E], translation [Tm, 3], foot_contact [Tm, 4]."""

    id: str
    speaker: str
    text: str
    phonemes: np.ndarray
    durations: np.ndarray
    pitch: np.ndarray
    energy: np.ndarray
    mel: np.ndarray
    onsets: np.ndarray
    pose: np.ndarray
    expression: np.ndarray
    translation: np.ndarray
    foot_contact: np.ndarray

    def state(self) -> dict:
        """A torch.save-able dict, large arrays as float16 (a cache of a few thousand items stays small)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.ndim == 2:
                value = value.astype(np.float16)
            out[f.name] = value
        return out

    @classmethod
    def from_state(cls, state: dict) -> TrainingItem:
        return cls(
            **{
                k: v.astype(np.float32) if getattr(v, "dtype", None) == np.float16 else v
                for k, v in state.items()
            }
        )


def align_durations(
    text: str, words: Sequence[Timing], phones: Sequence[Timing], start: float, frames: int, frame_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """The text's g2p phonemes (ids) and their durations in mel frames (summing to `frames`), from a
    recording's word and phone tiers (empty labels are silences) whose audio starts at `start` seconds.

    Word i of the g2p (pauses aside) takes the i-th labelled word interval; inside a word, the recording's
    phones give the boundaries when their count matches the g2p's, else the word's frames are shared
    evenly. A silence goes to the g2p's pause at that point when there is one (punctuation, the end), else
    to the end of the word before it (speech has short pauses where text has no comma). Raises
    AlignmentError when the word counts differ."""
    g2p = english_words(text)
    spoken: list[Timing] = []
    for w in (w for w in words if w.label.strip()):
        if w.label.startswith("'") and spoken:  # flite says "that 's" where the text has one word
            spoken[-1] = Timing(spoken[-1].label + w.label, spoken[-1].start, w.end)
        else:
            spoken.append(w)
    if len([w for w, _ in g2p if w != PAUSE]) != len(spoken):
        raise AlignmentError(f"{len(spoken)} recorded words for {sum(w != PAUSE for w, _ in g2p)} g2p words")

    def frame(t: float) -> int:
        return int(np.clip(round((t - start) * frame_rate), 0, frames))

    bounds: list[int] = []  # end frame of every g2p phoneme
    at = 0
    for k, (word, phonemes) in enumerate(g2p):
        if word == PAUSE:
            following = next((w for w, _ in g2p[k + 1 :] if w != PAUSE), None)
            end = frames if following is None else frame(spoken[at].start)
            bounds.append(max(end, bounds[-1] if bounds else 0))
            continue
        timing = spoken[at]
        inside = [p for p in phones if p.label.strip() and timing.start - 1e-4 <= p.start < timing.end - 1e-4]
        first = frame(timing.start) if not bounds else bounds[-1]
        if len(inside) == len(phonemes):
            ends = [frame(p.end) for p in inside]
        else:
            ends = list(
                np.linspace(frame(timing.start), frame(timing.end), len(phonemes) + 1)[1:].round().astype(int)
            )
        ends[-1] = frame(timing.end)
        next_pause = k + 1 < len(g2p) and g2p[k + 1][0] == PAUSE
        if not next_pause and at + 1 < len(spoken):
            ends[-1] = frame(spoken[at + 1].start)  # an unpunctuated silence joins this word's last phoneme
        for end in ends:
            bounds.append(max(int(end), first, bounds[-1] if bounds else 0))
        at += 1
    bounds[-1] = frames
    durations = np.diff([0, *bounds]).astype(np.int64)
    if durations[: len(durations) - 1].sum() < 0 or (durations < 0).any():
        raise AlignmentError("timings go backwards")
    ids = np.array([SYMBOL_TO_ID[p] for _, phonemes in g2p for p in phonemes], dtype=np.int64)
    return ids, durations


@dataclass
class FrameTargets:
    mel: np.ndarray  # [T, M]
    log_f0: np.ndarray  # [T], NaN where unvoiced
    energy: np.ndarray  # [T]
    onsets: np.ndarray  # [T] in {0, 1}


def frame_targets(wave: np.ndarray, rate: int, audio: AudioConfig) -> FrameTargets:
    """Mel, pitch, energy and onsets of a recording at the model's analysis (resampled to its rate)."""
    if rate != audio.sampling_rate:
        wave = soxr.resample(wave, rate, audio.sampling_rate).astype(np.float32)
    wave = np.clip(wave, -1.0, 1.0).astype(np.float32)
    mel = mel_spectrogram(torch.from_numpy(wave).unsqueeze(0), audio)[0].numpy()
    frames = mel.shape[0]
    hop, n_fft, center = audio.hop_size, audio.n_fft, audio.center
    spec = np.abs(librosa.stft(wave, n_fft=n_fft, hop_length=hop, win_length=audio.win_size, center=center))
    energy = _fit(np.linalg.norm(spec, axis=0), frames)
    fmin = max(60.0, 2.01 * audio.sampling_rate / n_fft)  # YIN needs two periods of fmin in a frame
    f0 = _fit(
        librosa.yin(
            wave,
            fmin=fmin,
            fmax=500,
            sr=audio.sampling_rate,
            frame_length=n_fft,
            hop_length=hop,
            center=center,
        ),
        frames,
    )
    zcr = _fit(
        librosa.feature.zero_crossing_rate(wave, frame_length=n_fft, hop_length=hop, center=center)[0], frames
    )
    voiced = (energy > 0.05 * energy.max()) & (zcr < 0.2)
    onsets = np.zeros(frames, dtype=np.float32)
    found = librosa.onset.onset_detect(y=wave, sr=audio.sampling_rate, hop_length=hop, units="frames")
    onsets[found[found < frames]] = 1.0
    return FrameTargets(
        mel, np.where(voiced, np.log(f0), np.nan).astype(np.float32), energy.astype(np.float32), onsets
    )


def _fit(values: np.ndarray, frames: int) -> np.ndarray:
    """Cut or edge-pad a per-frame array to the mel's frame count (analyses differ by a frame at the ends)."""
    values = values[:frames]
    return np.pad(values, (0, frames - values.shape[0]), mode="edge") if values.shape[0] < frames else values


def phoneme_means(values: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Per-phoneme NaN-aware means of per-frame values (NaN for a phoneme with no finite frame, or none)."""
    out = np.full(durations.shape[0], np.nan, dtype=np.float32)
    at = 0
    for i, d in enumerate(durations):
        chunk = values[at : at + d]
        chunk = chunk[np.isfinite(chunk)]
        if chunk.size:
            out[i] = chunk.mean()
        at += d
    return out


def fit_motion(values: np.ndarray, frames: int) -> np.ndarray:
    """Motion cut or padded with its last frame to `frames` 30 fps frames."""
    values = values[:frames]
    if values.shape[0] < frames:
        values = np.concatenate([values, np.repeat(values[-1:], frames - values.shape[0], axis=0)])
    return values.astype(np.float32)


@dataclass(frozen=True)
class SpeakerStats:
    """Per speaker: mean and standard deviation of phoneme-level log F0 and energy (training split)."""

    pitch: tuple[float, float]
    energy: tuple[float, float]


def speaker_stats(items: Sequence[TrainingItem]) -> dict[str, SpeakerStats]:
    out = {}
    for speaker in sorted({u.speaker for u in items}):
        mine = [u for u in items if u.speaker == speaker]
        pitch = np.concatenate([u.pitch for u in mine])
        energy = np.concatenate([u.energy for u in mine])
        pitch, energy = pitch[np.isfinite(pitch)], energy[np.isfinite(energy)]
        out[speaker] = SpeakerStats(
            (float(pitch.mean()), float(pitch.std() + 1e-6)),
            (float(energy.mean()), float(energy.std() + 1e-6)),
        )
    return out


def collate(
    items: Sequence[TrainingItem], speakers: Sequence[str], stats: dict[str, SpeakerStats], frame_rate: float
) -> Batch:
    """Pad items into a Batch: z-scored pitch and energy (an unvoiced phoneme's pitch is its speaker's mean,
    0), motion lengths from the mel lengths."""
    b = len(items)
    length = max(u.phonemes.shape[0] for u in items)
    frames = max(u.mel.shape[0] for u in items)
    mel_lens = torch.tensor([u.mel.shape[0] for u in items])
    motion_lens = torch.tensor([motion_frames(int(n), frame_rate) for n in mel_lens])
    tm = int(motion_lens.max())

    def pad(arrays: list[np.ndarray], size: int, fill: float = 0.0) -> torch.Tensor:
        shape = (b, size, *arrays[0].shape[1:])
        out = np.full(shape, fill, dtype=arrays[0].dtype)
        for i, a in enumerate(arrays):
            out[i, : min(size, a.shape[0])] = a[:size]
        return torch.from_numpy(out)

    def z(values: np.ndarray, mean_std: tuple[float, float]) -> np.ndarray:
        return np.nan_to_num((values - mean_std[0]) / mean_std[1]).astype(np.float32)

    def motion(name: str) -> torch.Tensor:
        return pad(
            [fit_motion(getattr(u, name), int(n)) for u, n in zip(items, motion_lens, strict=True)], tm
        )

    return Batch(
        speakers=torch.tensor([list(speakers).index(u.speaker) for u in items]),
        texts=pad([u.phonemes for u in items], length),
        src_lens=torch.tensor([u.phonemes.shape[0] for u in items]),
        durations=pad([u.durations for u in items], length),
        pitches=pad([z(u.pitch, stats[u.speaker].pitch) for u in items], length),
        energies=pad([z(u.energy, stats[u.speaker].energy) for u in items], length),
        mels=pad([u.mel for u in items], frames, fill=float(np.log(1e-5))),
        onsets=pad([u.onsets for u in items], frames),
        mel_lens=mel_lens,
        pose=motion("pose"),
        expression=motion("expression"),
        translation=motion("translation"),
        foot_contact=motion("foot_contact"),
        motion_lens=motion_lens,
    )
