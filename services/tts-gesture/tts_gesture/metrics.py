"""FastTalker's evaluation metrics, computed as the official scoring code computes them.

Motion and face follow PantoMatrix's EMAGE evaluation API (`emage_evaltools/metric.py`: `FGD`, `BC`,
`L1div`, `MSEFace`, `LVDFace`, used as in the PantoMatrix README's evaluation loop): FGD is the Fréchet
distance of motion-autoencoder latents of whole 32-frame windows; BC the Gaussian hit rate of audio onsets by
motion beats (local minima of upper-body joint speed); L1div the mean L1 distance of joint positions to their
sequence mean; face MSE and LVD compare face vertices and their frame-to-frame velocities. EMAGE computes
positions and vertices without root translation; so do these. Speech: mel-cepstral distortion against the
source voice's audio (DTW-aligned) and the word error rate of a Whisper-base round trip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import jiwer
import librosa
import numpy as np
import torch
from scipy import linalg
from scipy.signal import argrelextrema

from shared.rigs.flame import FlameModel
from shared.rigs.mappings import SMPLX_TO_OPEN_RIG
from shared.rigs.open_rig import FaceRig, Skeleton
from shared.rigs.rotations import matrix_to_rot6d, rot6d_to_axis_angle, rot6d_to_matrix
from shared.rigs.smplx import SMPLX_JOINTS, SmplxModel, rot6d_to_pose
from shared.synth.bvh import open_rig_joints
from shared.synth.texts import normalize_transcript
from tts_gesture.data.beat2 import smplx_joints

FPS = 30
WINDOW = 32  # EMAGE's FGD drops each sequence's frames past a multiple of 32
ONSET_RATE, ONSET_HOP = 16000, 512  # BC's audio onsets: librosa at 16 kHz, hop 512
# BC's upper body: SMPL-X spine1-3, neck, collars, head, shoulders, elbows, wrists (EMAGE `upper_body`);
# on the open rig, the bone that starts where each SMPL-X joint sits (shared.rigs.mappings).
SMPLX_UPPER_BODY = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
OPEN_RIG_UPPER_BODY = tuple(SMPLX_TO_OPEN_RIG[SMPLX_JOINTS[i]][0][0] for i in SMPLX_UPPER_BODY)
SMPLX_JAW = SMPLX_JOINTS.index("jaw")
MCD_RATE, MCD_ORDER = 16000, 13
MCD_BANDS, SILENCE_DB, FLOOR_DB = 80, 40.0, 60.0
_MCD_DB = 10.0 * math.sqrt(2.0) / math.log(10.0)  # Kubichek's dB scale for natural-log cepstra


# ------------------------------------------------------------------------------------------------- FGD
def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance of Gaussians fitted to samples a [N, C] and b [M, C] (EMAGE `FGD.frechet_distance`:
    eps on both covariances' diagonals, the real part of the matrix square root)."""
    mu1, mu2 = np.mean(a, axis=0), np.mean(b, axis=0)
    sigma1, sigma2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(np.real(covmean)))


def motion_latents(encoder: torch.nn.Module, sequences: Iterable[np.ndarray]) -> np.ndarray:
    """[N, C] latents of rot6d sequences [T, J*6], each cut to whole 32-frame windows (shorter ones are
    dropped) and re-orthonormalised first, as EMAGE's eval does. encoder has `map2latent` [B, T, D] ->
    [B, T', C]."""
    out = []
    with torch.no_grad():
        for poses in sequences:
            usable = len(poses) - len(poses) % WINDOW
            if usable:
                x = torch.as_tensor(np.asarray(poses[:usable], dtype=np.float32))
                x = matrix_to_rot6d(rot6d_to_matrix(x.reshape(usable, -1, 6))).reshape(1, usable, -1)
                latent = encoder.map2latent(x)
                out.append(latent.reshape(-1, latent.shape[-1]).numpy())
    if not out:
        raise ValueError(f"no sequence has {WINDOW} frames")
    return np.concatenate(out).astype(np.float64)


def fgd(encoder: torch.nn.Module, generated: Iterable[np.ndarray], real: Iterable[np.ndarray]) -> float:
    """FGD of generated against real rot6d sequences (raw; EMAGE's tables print it in units of 10^-1)."""
    return frechet_distance(motion_latents(encoder, generated), motion_latents(encoder, real))


# ---------------------------------------------------------------------------------------- positions
def open_rig_positions(poses_6d: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """[T, J*6] open-rig rot6d -> joint positions [T, J, 3] (metres, root at its rest place)."""
    poses = np.asarray(poses_6d, dtype=np.float64)
    return open_rig_joints(rot6d_to_matrix(poses.reshape(len(poses), -1, 6)), skeleton)


def smplx_positions(poses_6d: np.ndarray, model: SmplxModel, betas: np.ndarray) -> np.ndarray:
    """[T, 330] SMPL-X rot6d -> joint positions [T, 55, 3] of the betas' body (the user's SMPL-X model)."""
    poses = np.asarray(poses_6d, dtype=np.float64)
    return smplx_joints(model, rot6d_to_pose(poses), betas, np.zeros((len(poses), 3)))


def joint_speeds(positions: np.ndarray, fps: float = FPS) -> np.ndarray:
    """[T, J, 3] -> speeds [T, J]: forward difference at the first frame, central in the middle,
    backward at the last (EMAGE `BC.load_motion`)."""
    p = np.asarray(positions, dtype=np.float64)
    velocity = np.concatenate([p[1:2] - p[:1], (p[2:] - p[:-2]) / 2, p[-1:] - p[-2:-1]]) * fps
    return np.linalg.norm(velocity, axis=-1)


def mean_joint_speed(sequences: Iterable[np.ndarray], fps: float = FPS) -> np.ndarray:
    """[J] mean speed of each joint over all frames of position sequences [T, J, 3] (EMAGE's
    `mean_vel_*.npy`, which BC divides speeds by)."""
    return np.concatenate([joint_speeds(p, fps) for p in sequences]).mean(axis=0)


# ----------------------------------------------------------------------------------------------- BC
def audio_onsets(wave: np.ndarray, rate: int) -> np.ndarray:
    """Onset times (s) of audio: librosa's onset detector at 16 kHz, hop 512 (EMAGE `BC.load_audio`)."""
    y = librosa.resample(np.asarray(wave, dtype=np.float32), orig_sr=rate, target_sr=ONSET_RATE)
    return librosa.onset.onset_detect(y=y, sr=ONSET_RATE, hop_length=ONSET_HOP, units="time")


def motion_beats(
    speeds: np.ndarray, start: int, end: int, order: int = 7, threshold: float = 0.1
) -> list[np.ndarray]:
    """Per joint, frames (from `start`) of local speed minima in speeds[start:end] (normalised by the mean
    speed) over `order` frames each side. As upstream, a minimum counts where the normalised speed at the
    window-relative index exceeds `threshold` (the same frame only when start is 0)."""
    beats = []
    for joint in speeds.T:
        minima = argrelextrema(joint[start:end], np.less, order=order)[0]
        beats.append(minima[joint[minima] > threshold])
    return beats


def hit_rate(motion_times: np.ndarray, onset_times: np.ndarray, sigma: float) -> float:
    """Mean over audio onsets of exp(-d^2 / 2 sigma^2), d the distance to the nearest motion beat (EMAGE
    `BC.GAHR`); 0 without motion beats."""
    if len(motion_times) == 0:
        return 0.0
    nearest = np.abs(np.asarray(onset_times)[:, None] - np.asarray(motion_times)[None, :]).min(axis=1)
    return float(np.mean(np.exp(-(nearest**2) / (2 * sigma**2))))


def beat_consistency(
    items: Iterable[tuple[np.ndarray, int, np.ndarray]],
    mean_speed: np.ndarray,
    *,
    sigma: float = 0.3,
    order: int = 7,
    threshold: float = 0.1,
    trim: int = 60,
) -> float:
    """BC over (wave, rate, upper-body positions [T, J, 3]) items; mean_speed [J] from mean_joint_speed.

    EMAGE's setting for BEAT2: sigma 0.3, order 7, threshold 0.1 (the evaluation API's; the 2024 training
    scripts' `alignment` used 0.3), `trim` = 60 frames (2 s) cut from both ends of motion and audio. Each
    sequence's mean over joints is weighted by its T - 2 trim frames. Sequences no longer than 2 trim
    frames, or whose audio has no onset (upstream divides by zero), are left out.
    """
    total = weight = 0.0
    for wave, rate, positions in items:
        frames = len(positions)
        if frames <= 2 * trim:
            continue
        clip = np.asarray(wave)[round(trim / FPS * rate) : round((frames - trim) / FPS * rate)]
        onsets = audio_onsets(clip, rate)
        if not len(onsets):
            continue
        speeds = joint_speeds(positions)
        # A joint that never moves has no beats (upstream divides by its zero mean speed: NaN, no minima).
        speeds = np.divide(speeds, mean_speed, out=np.zeros_like(speeds), where=mean_speed > 0)
        beats = motion_beats(speeds, trim, frames - trim, order, threshold)
        score = np.mean([hit_rate(b / FPS, onsets, sigma) for b in beats])
        total += score * (frames - 2 * trim)
        weight += frames - 2 * trim
    if not weight:
        raise ValueError(f"no sequence longer than {2 * trim} frames with audio onsets")
    return total / weight


# ------------------------------------------------------------------------------------------- L1div
def l1_diversity(sequences: Iterable[np.ndarray]) -> float:
    """EMAGE `L1div`: summed |x - sequence mean| of every position coordinate, over all frames."""
    total = frames = 0.0
    for positions in sequences:
        flat = np.asarray(positions, dtype=np.float64).reshape(len(positions), -1)
        total += np.abs(flat - flat.mean(axis=0)).sum()
        frames += len(flat)
    return total / frames


# -------------------------------------------------------------------------------------------- face
def open_rig_face_vertices(arkit: np.ndarray, rig: FaceRig) -> np.ndarray:
    """ARKit weights [T, 52] -> the open rig's face vertices [T, V, 3] (its head, at rest)."""
    return rig(np.asarray(arkit, dtype=np.float32))


def flame_face_vertices(expression: np.ndarray, poses_6d: np.ndarray, flame: FlameModel) -> np.ndarray:
    """FLAME expression [T, 100] and SMPL-X rot6d poses [T, 330] -> FLAME vertices [T, 5023, 3], driven by
    expression and jaw only, as EMAGE's face vertices are."""
    poses = np.asarray(poses_6d, dtype=np.float64).reshape(len(poses_6d), -1, 6)
    return flame.vertices(np.asarray(expression), rot6d_to_axis_angle(poses[:, SMPLX_JAW]))


def face_errors(predicted: Sequence[np.ndarray], target: Sequence[np.ndarray]) -> dict[str, float]:
    """EMAGE `MSEFace` and `LVDFace` over paired vertex sequences [T, V, 3]: the squared vertex error and the
    L1 difference of frame-to-frame vertex displacements, each summed and divided by T * 3V (metres^2, m)."""
    squared = velocity = count = 0.0
    for p, t in zip(predicted, target, strict=True):
        p = np.asarray(p, np.float64).reshape(len(p), -1)
        t = np.asarray(t, np.float64).reshape(len(t), -1)
        squared += np.square(p - t).sum()
        velocity += np.abs(np.diff(p, axis=0) - np.diff(t, axis=0)).sum()
        count += p.size
    return {"face_mse": squared / count, "lvd": velocity / count}


def face_metrics(
    layout: str,
    predicted: Sequence[tuple[np.ndarray, np.ndarray]],
    target: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    rig: FaceRig | None = None,
    flame: FlameModel | None = None,
) -> dict[str, float | str]:
    """face_errors of paired (expression, poses_6d) sequences: open-rig ARKit weights through `rig`
    (shared.rigs.open_rig.load_face_rig()), SMPL-X through `flame` (shared.rigs.flame.load_flame());
    {"skipped": reason} for the SMPL-X layout without a FLAME model."""
    if layout == "smplx":
        if flame is None:
            return {"skipped": "no FLAME model configured (RigSettings.flame_model, ORATE_RIGS__FLAME_MODEL)"}
        pairs = [
            (flame_face_vertices(*p, flame), flame_face_vertices(*t, flame))
            for p, t in zip(predicted, target, strict=True)
        ]
    else:
        if rig is None:
            raise ValueError("the open-rig layout needs its face rig")
        pairs = [
            (open_rig_face_vertices(p[0], rig), open_rig_face_vertices(t[0], rig))
            for p, t in zip(predicted, target, strict=True)
        ]
    return face_errors([p for p, _ in pairs], [t for _, t in pairs])


# ------------------------------------------------------------------------------------------- speech
def mel_cepstrum(wave: np.ndarray, rate: int) -> np.ndarray:
    """[N, 13] mel-cepstral coefficients c1..c13 (c0, the level, left out) of the speech frames: at 16 kHz,
    25 ms Hann windows every 5 ms, 80 mel bands 0-8 kHz, natural log of the mel amplitudes, DCT-II scaled as
    a cosine series of the log spectrum (2 / bands, the scale of SPTK's mel-cepstrum, so values compare with
    published MCDs in magnitude; those use SPTK `mcep` on WORLD envelopes, which no wheel here ships).
    Amplitudes are floored 60 dB below the utterance's peak and frames 40 dB below the loudest frame are
    dropped: TTS engines write exact zeros in pauses and above their band, which would otherwise dominate."""
    y = librosa.resample(np.asarray(wave, dtype=np.float32), orig_sr=rate, target_sr=MCD_RATE)
    power = librosa.feature.melspectrogram(
        y=y, sr=MCD_RATE, n_fft=512, win_length=400, hop_length=80, n_mels=MCD_BANDS, fmin=0.0, fmax=8000.0
    )
    energy = power.sum(axis=0)
    power = power[:, energy > energy.max() * 10 ** (-SILENCE_DB / 10)]
    log_amplitude = 0.5 * np.log(np.maximum(power, power.max() * 10 ** (-FLOOR_DB / 10)))
    ortho = librosa.feature.mfcc(S=log_amplitude, n_mfcc=MCD_ORDER + 1, dct_type=2, norm="ortho")
    return (ortho[1:] * np.sqrt(2.0 / MCD_BANDS)).T


def mel_cepstral_distortion(wave: np.ndarray, rate: int, reference: np.ndarray, reference_rate: int) -> float:
    """MCD (dB) of wave against reference over their speech frames: DTW-aligned on Euclidean cepstral
    distance, then 10 sqrt(2) / ln 10 x the distance averaged along the path."""
    a, b = mel_cepstrum(wave, rate), mel_cepstrum(reference, reference_rate)
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    return float(_MCD_DB * np.linalg.norm(a[path[:, 0]] - b[path[:, 1]], axis=1).mean())


def asr_round_trip_wer(
    waves: Iterable[np.ndarray], rate: int, texts: Sequence[str], transcriber: Callable[[np.ndarray], str]
) -> float:
    """Word error rate (0-1) of transcripts of 16 kHz-resampled waves against their texts, both upper-cased
    with punctuation dropped; transcriber is e.g. shared.encoders.whisper_asr.WhisperTranscriber()."""
    hypotheses = [
        normalize_transcript(
            transcriber(librosa.resample(np.asarray(w, np.float32), orig_sr=rate, target_sr=16000))
        )
        for w in waves
    ]
    return float(jiwer.wer([normalize_transcript(t) for t in texts], hypotheses))
