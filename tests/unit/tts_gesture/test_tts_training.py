"""A few training steps on one fixed batch lower every loss; bad configs are refused."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from tts_gesture.config import FastTalkerConfig
from tts_gesture.losses import FastTalkerLoss
from tts_gesture.model import build_fasttalker
from tts_gesture.train import make_optimizer, train_step

STEPS = 8


def _without_dropout(config: FastTalkerConfig) -> FastTalkerConfig:
    data = config.model_dump()
    data["transformer"].update(encoder_dropout=0.0, decoder_dropout=0.0)
    data["variance_predictor"]["dropout"] = 0.0
    data["gesture_decoder"]["dropout"] = 0.0
    return FastTalkerConfig.model_validate(data)


@pytest.mark.parametrize("layout", ["smplx", "open-rig"])
def test_steps_lower_every_loss(tiny_config: FastTalkerConfig, layout: str, batch_for) -> None:
    config = _without_dropout(tiny_config.model_copy(update={"layout": layout}))
    torch.manual_seed(0)
    model = build_fasttalker(config)
    batch = batch_for(config)
    optimizer, loss_fn = make_optimizer(model, config), FastTalkerLoss(config.train.loss)
    history = [
        train_step(model, batch, optimizer, loss_fn, config, torch.Generator().manual_seed(0))
        for _ in range(STEPS)
    ]
    first, last = history[0], history[-1]
    assert set(first) == set(config.train.loss.model_dump()) | {"total"}
    risen = {name: (first[name], last[name]) for name in first if not last[name] < first[name]}
    assert not risen, f"losses that did not fall in {STEPS} steps: {risen}"


def test_vocoder_must_upsample_by_the_hop(tiny_config: FastTalkerConfig) -> None:
    data = tiny_config.model_dump()
    data["vocoder"]["upsample_rates"] = [5, 4, 2]
    with pytest.raises(ValidationError, match="not the mel hop of 80"):
        FastTalkerConfig.model_validate(data)


def test_heads_must_divide_the_width(tiny_config: FastTalkerConfig) -> None:
    data = tiny_config.model_dump()
    data["transformer"]["encoder_head"] = 3
    with pytest.raises(ValidationError, match="not divisible by 3 heads"):
        FastTalkerConfig.model_validate(data)


def test_full_config_builds_with_the_documented_sizes() -> None:
    config = FastTalkerConfig.from_yaml("full")
    assert config.audio.frame_rate == pytest.approx(86.13, abs=0.01)
    model = build_fasttalker(config)
    assert model.vocoder.conv_pre.weight_v.shape == (512, 80, 7)
    assert len(model.encoder.layer_stack) == 4 and len(model.decoder.layer_stack) == 6
