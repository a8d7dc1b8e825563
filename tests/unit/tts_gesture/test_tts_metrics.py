"""FastTalker's metrics on small hand-made cases: FGD, BC, L1div, face MSE and LVD, MCD, ASR round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import ndtr
from tts_gesture import metrics
from tts_gesture.layouts import OPEN_RIG
from tts_gesture.motion_ae import MotionAEConfig, MotionAutoencoder, load_motion_ae

from shared.rigs.flame import FlameModel
from shared.rigs.open_rig import FaceRig
from shared.rigs.rotations import axis_angle_to_rot6d

RATE = 16000


class WindowMean(torch.nn.Module):
    """A stand-in encoder: one latent per 16 frames, the mean of those frames."""

    def map2latent(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1] // 16, 16, x.shape[2]).mean(dim=2)


def rot6d_sequence(rng: np.random.Generator, frames: int, joints: int = 2) -> np.ndarray:
    return axis_angle_to_rot6d(rng.normal(0, 0.5, (frames, joints, 3))).reshape(frames, -1).astype(np.float32)


# ------------------------------------------------------------------------------------------------- FGD
def test_frechet_distance_is_zero_for_identical_sets_and_the_mean_shift_squared_for_a_shifted_one() -> None:
    a = np.random.default_rng(0).normal(size=(500, 3))
    # Upstream adds eps to both covariances inside the square root only: identical sets score -2 eps d.
    assert metrics.frechet_distance(a, a) == pytest.approx(-2 * 1e-6 * 3, abs=1e-10)
    shift = np.array([0.3, -0.4, 0.0])  # same covariance: only |shift|^2 = 0.25 remains
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(0.25, abs=1e-5)


def test_fgd_uses_whole_32_frame_windows_of_orthonormalised_rot6d() -> None:
    rng = np.random.default_rng(1)
    sequence = rot6d_sequence(rng, 40)
    latents = metrics.motion_latents(WindowMean(), [sequence, sequence[:20]])
    assert latents.shape == (2, 12)  # frames 0-31 of the first only; the 20-frame one has no whole window
    scaled = metrics.motion_latents(WindowMean(), [3.0 * sequence])  # Gram-Schmidt undoes the scale
    np.testing.assert_allclose(scaled, latents, atol=1e-5)
    real = [rot6d_sequence(rng, 64) for _ in range(40)]
    assert metrics.fgd(WindowMean(), real, real) == pytest.approx(0.0, abs=1e-4)
    frozen = [np.repeat(s[:1], 64, axis=0) for s in real]
    assert metrics.fgd(WindowMean(), frozen, real) > 0.01


def test_motion_autoencoder_shapes_and_a_saved_one_loads_with_the_same_latents(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MotionAutoencoder(MotionAEConfig(pose_dims=12, latent=8, layers=4)).eval()
    x = torch.randn(2, 32, 12)
    assert model.map2latent(x).shape == (2, 2, 8)
    assert model(x).shape == x.shape
    with pytest.raises(ValueError, match="multiple of 16"):
        model.map2latent(x[:, :20])
    model.save(tmp_path, data="test")
    loaded = load_motion_ae(tmp_path)
    torch.testing.assert_close(loaded.map2latent(x), model.map2latent(x))
    with pytest.raises(FileNotFoundError, match="train_motion_ae"):
        load_motion_ae(tmp_path / "missing")


def test_the_shipped_motion_autoencoder_fits_the_open_rig_layout() -> None:
    model = load_motion_ae()
    assert model.config.pose_dims == OPEN_RIG.pose_dims
    assert model.map2latent(torch.zeros(1, 64, OPEN_RIG.pose_dims)).shape == (1, 4, model.config.latent)


# -------------------------------------------------------------------------------------------------- BC
def test_hit_rate_hand_computed() -> None:
    # Onsets at 1.0 and 2.0 s; nearest beats 0 and 0.3 s away; sigma 0.3.
    assert metrics.hit_rate(np.array([1.0, 2.3]), np.array([1.0, 2.0]), 0.3) == pytest.approx(
        (1 + math.exp(-0.09 / 0.18)) / 2
    )
    assert metrics.hit_rate(np.array([]), np.array([1.0]), 0.3) == 0.0


def clicks(times: list[float], seconds: float) -> np.ndarray:
    wave = np.zeros(int(seconds * RATE), np.float32)
    burst = np.random.default_rng(2).normal(0, 0.5, 400).astype(np.float32) * np.hanning(400)
    for t in times:
        wave[int(t * RATE) : int(t * RATE) + 400] += burst
    return wave


def positions_with_slow_points(slow: list[float], frames: int) -> np.ndarray:
    """One joint moving along x, its speed dipping to 0.2 of its peak (above BC's threshold) at `slow` s."""
    t = np.arange(frames) / metrics.FPS
    # x(t) integrates the speed 1 - 0.8 exp(-(t - s)^2 / 2 w^2) exactly, so minima fall on frames.
    w = 0.08
    x = t - 0.8 * w * math.sqrt(2 * math.pi) * sum(ndtr((t - s) / w) for s in slow)
    return np.stack([x, np.zeros(frames), np.zeros(frames)], axis=1)[:, None, :]


def test_beat_consistency_is_higher_when_speed_minima_sit_on_onsets() -> None:
    onset_times = [0.5, 1.3, 2.0, 2.9, 3.6]
    frames = 4 * metrics.FPS
    wave = clicks(onset_times, 4.0)
    aligned = positions_with_slow_points(onset_times, frames)
    shifted = positions_with_slow_points([t + 0.3 for t in onset_times], frames)
    mean_speed = metrics.mean_joint_speed([aligned])
    assert mean_speed == pytest.approx([np.mean(metrics.joint_speeds(aligned))])
    beats = metrics.motion_beats(metrics.joint_speeds(aligned) / mean_speed, 0, frames)
    np.testing.assert_allclose(beats[0] / metrics.FPS, onset_times, atol=1.5 / metrics.FPS)

    def bc(positions: np.ndarray) -> float:
        return metrics.beat_consistency([(wave, RATE, positions)], mean_speed, trim=0)

    assert bc(aligned) > 0.8
    assert bc(shifted) < bc(aligned) - 0.25
    # A joint that never moves has no beats: it scores 0 and halves a two-joint mean.
    with_still = np.concatenate([aligned, np.zeros_like(aligned)], axis=1)
    still_speed = np.concatenate([mean_speed, [0.0]])
    assert metrics.beat_consistency([(wave, RATE, with_still)], still_speed, trim=0) == pytest.approx(
        bc(aligned) / 2
    )


def test_beat_consistency_trims_both_ends_and_weights_by_the_rest() -> None:
    wave, positions = clicks([1.0, 2.5], 4.0), positions_with_slow_points([1.0, 2.5], 120)
    speed = metrics.mean_joint_speed([positions])
    with pytest.raises(ValueError, match="longer than 120 frames"):
        metrics.beat_consistency([(wave, RATE, positions)], speed, trim=60)
    long = metrics.beat_consistency([(wave, RATE, positions)], speed, trim=20)
    silent = (np.zeros_like(wave), RATE, positions)  # no onset: left out, as upstream cannot score it
    assert metrics.beat_consistency([(wave, RATE, positions), silent], speed, trim=20) == long


def test_joint_speeds_use_upstream_differences() -> None:
    p = np.array([0.0, 1.0, 4.0, 9.0])[:, None, None] * np.array([1.0, 0.0, 0.0])
    # forward (1), central ((4 - 0) / 2, (9 - 1) / 2), backward (5): units per frame, x 30 fps
    np.testing.assert_allclose(metrics.joint_speeds(p)[:, 0], np.array([1.0, 2.0, 4.0, 5.0]) * 30)


# ----------------------------------------------------------------------------------------------- L1div
def test_l1_diversity() -> None:
    still = np.ones((10, 3, 3))
    assert metrics.l1_diversity([still, 2 * still]) == 0.0
    # Frames x = 0 and 2 about their mean 1: |−1| + |1| over 2 frames; the other set adds 0 over 2 frames.
    moving = np.array([[[0.0, 0.0, 0.0]], [[2.0, 0.0, 0.0]]])
    assert metrics.l1_diversity([moving]) == pytest.approx(1.0)
    assert metrics.l1_diversity([moving, np.zeros((2, 1, 3))]) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ face
def tiny_face_rig() -> FaceRig:
    basis = np.zeros((52, 2, 3), np.float32)
    basis[24, 0, 2] = -0.04  # jawOpen drops vertex 0 by 4 cm
    return FaceRig(
        template=np.zeros((2, 3), np.float32),
        basis=basis,
        faces=np.zeros((0, 3), np.int32),
        lip=np.array([0]),
        upper=np.array([1]),
        vertex_ids=np.arange(2),
    )


def test_face_mse_and_lvd_hand_computed() -> None:
    target = np.zeros((3, 2, 3))
    offset = target + 0.1  # a constant offset: squared error 0.01, no velocity difference
    assert metrics.face_errors([offset], [target]) == pytest.approx({"face_mse": 0.01, "lvd": 0.0})
    jump = target.copy()
    jump[1, 0, 0] = 0.3  # one coordinate out and back: |0.3| + |-0.3| over 3 frames x 6 coordinates
    assert metrics.face_errors([jump], [target]) == pytest.approx({"face_mse": 0.09 / 18, "lvd": 0.6 / 18})


def test_face_metrics_through_the_open_rig_and_skipped_without_flame() -> None:
    rig = tiny_face_rig()
    open_jaw, closed = np.zeros((4, 52)), np.zeros((4, 52))
    open_jaw[:, 24] = 0.5  # vertex 0 two centimetres lower in every frame
    pose = np.zeros((4, 624))
    scores = metrics.face_metrics("open-rig", [(open_jaw, pose)], [(closed, pose)], rig=rig)
    assert scores == pytest.approx({"face_mse": 0.02**2 / 6, "lvd": 0.0})
    skipped = metrics.face_metrics("smplx", [(np.zeros((4, 100)), np.zeros((4, 330)))] * 2, [], flame=None)
    assert "FLAME" in skipped["skipped"]


def tiny_flame() -> FlameModel:
    """FLAME's five joints at vertices 0-4 plus vertex 5, skinned to the jaw 10 cm in front of it (+z)."""
    template = np.zeros((6, 3))
    template[:5, 1] = 0.05 * np.arange(5)
    template[5] = template[2] + [0.0, 0.0, 0.1]
    weights = np.zeros((6, 5))
    weights[np.arange(5), np.arange(5)] = 1.0
    weights[5, 2] = 1.0
    exprdirs = np.zeros((6, 3, 100))
    exprdirs[0, 2, 0] = 0.01  # expression coefficient 0 moves vertex 0 by 1 cm along z
    return FlameModel(
        v_template=template,
        shapedirs=np.zeros((6, 3, 1)),
        exprdirs=exprdirs,
        posedirs=np.zeros((6, 3, 36)),
        j_regressor=np.eye(5, 6),
        parents=np.array([-1, 0, 1, 1, 1]),
        weights=weights,
        faces=np.zeros((0, 3), np.int32),
    )


def test_face_metrics_through_flame_use_expression_and_the_smplx_jaw() -> None:
    frames, angle = 3, 0.3
    pose = np.tile(axis_angle_to_rot6d(np.zeros((55, 3))).reshape(1, -1), (frames, 1))
    opened = pose.copy()
    jaw = metrics.SMPLX_JAW
    opened[:, jaw * 6 : jaw * 6 + 6] = axis_angle_to_rot6d(np.array([angle, 0.0, 0.0]))
    smiling = np.zeros((frames, 100))
    smiling[:, 0] = 1.0
    scores = metrics.face_metrics(
        "smplx", [(smiling, opened)], [(np.zeros((frames, 100)), pose)], flame=tiny_flame()
    )
    # Vertex 5 swings on a 10 cm radius by the jaw angle; vertex 0 moves 1 cm; 6 vertices x 3 coordinates.
    swing = 0.02 * (1 - math.cos(angle))
    assert scores == pytest.approx({"face_mse": (swing + 1e-4) / 18, "lvd": 0.0})


# ---------------------------------------------------------------------------------------------- speech
def speech_like(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    return (0.1 * voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.normal(size=t.size)).astype(
        np.float32
    )


def test_mel_cepstral_distortion() -> None:
    wave = speech_like(1.0, 0)
    assert metrics.mel_cepstrum(wave, RATE).shape[1] == 13
    assert metrics.mel_cepstral_distortion(wave, RATE, wave, RATE) == pytest.approx(0.0, abs=1e-6)
    # The level (c0) is left out: a louder copy scores 0 too.
    assert metrics.mel_cepstral_distortion(2 * wave, RATE, wave, RATE) == pytest.approx(0.0, abs=1e-3)
    # DTW aligns a repeated stretch (the first 0.1 s said twice) with the original; a different sound is far.
    repeated = np.concatenate([wave[:1600], wave])
    noise = np.random.default_rng(3).normal(0, 0.1, wave.size).astype(np.float32)
    assert metrics.mel_cepstral_distortion(repeated, RATE, wave, RATE) < 1.0
    assert metrics.mel_cepstral_distortion(noise, RATE, wave, RATE) > 5.0
    # Pauses are not scored (engines write exact zeros there): speech with silence around it scores ~0.
    padded = np.concatenate([np.zeros(8000, np.float32), wave, np.zeros(8000, np.float32)])
    assert metrics.mel_cepstral_distortion(padded, RATE, wave, RATE) < 1.0


def test_asr_round_trip_wer_resamples_to_16k_and_normalises_both_sides() -> None:
    heard = []

    def transcriber(wave_16k: np.ndarray) -> str:
        heard.append(wave_16k.size)
        return "the cat, sit!"

    waves = [np.zeros(22050, np.float32), np.zeros(11025, np.float32)]
    wer = metrics.asr_round_trip_wer(waves, 22050, ["The cat sat.", "the cat sit"], transcriber)
    assert wer == pytest.approx(1 / 6)  # one substitution in six reference words
    assert heard == [16000, 8000]
