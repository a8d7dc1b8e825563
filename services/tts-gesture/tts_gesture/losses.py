"""FastTalker's training losses, each a masked mean over valid phonemes or frames.

Speech (FastSpeech2's `FastSpeech2Loss`): mel and PostNet-mel L1, MSE on log(1 + duration), pitch and
energy; onset BCE per mel frame. Vocoder: HiFi-GAN's mel L1 of the generated waveform (weight 45; the
adversarial and feature-matching terms need the MPD/MSD discriminators, not built yet). Gesture: L1 on
rot6d, on its velocity and acceleration, MSE on expression, L1 on translation, BCE on foot contact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tts_gesture.batch import Batch
from tts_gesture.config import LossWeights
from tts_gesture.model import FastTalkerOutput


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of values [B, T, ...] over the steps where valid [B, T] is True."""
    valid = valid.reshape(*valid.shape, *([1] * (values.dim() - valid.dim()))).expand_as(values)
    return values.masked_select(valid).mean()


def _valid(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class FastTalkerLoss:
    def __init__(self, weights: LossWeights) -> None:
        self.weights = weights

    def __call__(
        self,
        output: FastTalkerOutput,
        batch: Batch,
        vocoded_mel: torch.Tensor | None,
        segment_mel: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced output, its batch, and the log mel of the vocoder's waveform for a ground-truth mel
        segment (both [B, S, M]; None for a frozen vocoder) -> {name: loss} with 'total' the weighted sum."""
        src = _valid(batch.src_lens, batch.texts.shape[1])
        decoded, variance = output.decoded, output.variance
        t = min(decoded.mel.shape[1], batch.mels.shape[1])
        frames = _valid(batch.mel_lens, t)
        mels = batch.mels[:, :t]
        gesture = decoded.gesture
        tm = min(gesture.pose.shape[1], batch.pose.shape[1])
        motion = _valid(torch.minimum(gesture.lengths, batch.motion_lens), tm)
        pose, target_pose = gesture.pose[:, :tm], batch.pose[:, :tm]
        losses = {
            "mel": _masked_mean((decoded.mel[:, :t] - mels).abs(), frames),
            "postnet_mel": _masked_mean((decoded.postnet_mel[:, :t] - mels).abs(), frames),
            "duration": _masked_mean(
                (variance.log_duration - torch.log1p(batch.durations.float())) ** 2, src
            ),
            "pitch": _masked_mean((variance.pitch - batch.pitches) ** 2, src),
            "energy": _masked_mean((variance.energy - batch.energies) ** 2, src),
            "onset": _masked_mean(
                F.binary_cross_entropy_with_logits(
                    decoded.onset[:, :t], batch.onsets[:, :t].float(), reduction="none"
                ),
                frames,
            ),
            "rot6d": _masked_mean((pose - target_pose).abs(), motion),
            "velocity": _masked_mean((pose.diff(dim=1) - target_pose.diff(dim=1)).abs(), motion[:, 1:]),
            "acceleration": _masked_mean(
                (pose.diff(n=2, dim=1) - target_pose.diff(n=2, dim=1)).abs(), motion[:, 2:]
            ),
            "expression": _masked_mean((gesture.expression[:, :tm] - batch.expression[:, :tm]) ** 2, motion),
            "translation": _masked_mean(
                (gesture.translation[:, :tm] - batch.translation[:, :tm]).abs(), motion
            ),
            "foot_contact": _masked_mean(
                F.binary_cross_entropy_with_logits(
                    gesture.foot_contact[:, :tm], batch.foot_contact[:, :tm].float(), reduction="none"
                ),
                motion,
            ),
        }
        if vocoded_mel is not None:
            losses["waveform_mel"] = F.l1_loss(vocoded_mel, segment_mel)
        losses["total"] = sum(getattr(self.weights, name) * value for name, value in losses.items())
        return losses
