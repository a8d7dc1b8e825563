"""One joint training step: the TTS and gesture branches teacher-forced, the vocoder on ground-truth mels.

The optimiser is FastSpeech2's Adam (betas (0.9, 0.98), eps 1e-9); the step clips gradients at
`grad_clip_thresh` as FastSpeech2 does. The vocoder sees a ground-truth mel segment
(HiFi-GAN trains on 8192-sample segments), so its loss does not wait for the acoustic model to converge.
"""

from __future__ import annotations

import torch

from tts_gesture.audio import mel_spectrogram
from tts_gesture.batch import Batch
from tts_gesture.config import FastTalkerConfig
from tts_gesture.losses import FastTalkerLoss
from tts_gesture.model import FastTalker


def make_optimizer(model: FastTalker, config: FastTalkerConfig) -> torch.optim.Adam:
    t = config.train
    return torch.optim.Adam(model.parameters(), lr=t.learning_rate, betas=t.betas, eps=t.eps)


def train_step(
    model: FastTalker,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    loss_fn: FastTalkerLoss,
    config: FastTalkerConfig,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Forward, backward and one optimiser step on `batch`; returns every loss before the step."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    seed_frames = config.gesture_decoder.seed_frames
    output = model(
        batch.speakers,
        batch.texts,
        batch.src_lens,
        pitch_targets=batch.pitches,
        energy_targets=batch.energies,
        duration_targets=batch.durations,
        onset_targets=batch.onsets,
        seed=batch.motion()[:, :seed_frames],
    )
    segment = _mel_segment(batch, config.train.vocoder_segment_frames, generator)
    vocoded = mel_spectrogram(model.vocode(segment), config.audio)
    losses = loss_fn(output, batch, vocoded, segment)
    losses["total"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip_thresh)
    optimizer.step()
    return {name: float(value.detach()) for name, value in losses.items()}


def _mel_segment(batch: Batch, frames: int, generator: torch.Generator | None) -> torch.Tensor:
    """[B, S, M]: the same random window of every item's ground-truth mel, S <= frames within the shortest."""
    length = min(frames, int(batch.mel_lens.min()))
    start = int(torch.randint(0, int(batch.mel_lens.min()) - length + 1, (1,), generator=generator))
    return batch.mels[:, start : start + length]
