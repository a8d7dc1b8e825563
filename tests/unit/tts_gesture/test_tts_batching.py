"""Padding never leaks: an utterance decodes the same alone and in a padded batch."""

from __future__ import annotations

import torch
from tts_gesture.config import FastTalkerConfig
from tts_gesture.model import FastTalker


def test_item_alone_equals_item_in_padded_batch(
    tiny_model: FastTalker, tiny_config: FastTalkerConfig, batch_for
) -> None:
    tiny_model.eval()
    batch = batch_for(tiny_config)
    short = int(batch.src_lens.argmin())
    assert batch.src_lens[short] < batch.texts.shape[1]  # the item really is padded in the batch

    def run(rows: slice, length: int):
        with torch.no_grad():
            return tiny_model(
                batch.speakers[rows],
                batch.texts[rows, :length],
                batch.src_lens[rows],
                pitch_targets=batch.pitches[rows, :length],
                energy_targets=batch.energies[rows, :length],
                duration_targets=batch.durations[rows, :length],
            )

    together = run(slice(None), batch.texts.shape[1])
    alone = run(slice(short, short + 1), int(batch.src_lens[short]))
    frames, motion = int(batch.mel_lens[short]), int(batch.motion_lens[short])
    assert torch.allclose(
        together.decoded.postnet_mel[short, :frames], alone.decoded.postnet_mel[0], atol=1e-5
    )
    assert torch.allclose(
        together.variance.log_duration[short, : alone.variance.log_duration.shape[1]],
        alone.variance.log_duration[0],
        atol=1e-5,
    )
    for name in ("pose", "expression", "translation", "foot_contact"):
        x, y = getattr(together.decoded.gesture, name), getattr(alone.decoded.gesture, name)
        assert torch.allclose(x[short, :motion], y[0], atol=1e-5), name
