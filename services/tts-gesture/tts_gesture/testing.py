"""A checkpoint for tests and smoke runs: the tiny config with random weights and a fixed rhythm."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from tts_gesture.checkpoints import save_checkpoint
from tts_gesture.config import FastTalkerConfig
from tts_gesture.model import FastTalker


def save_tiny_checkpoint(
    folder: Path, layout: str = "smplx", voices: Sequence[str] = (), frames_per_phoneme: int = 3
) -> Path:
    """Write a tiny FastTalker (English voices named `voices`, else the tiny config's) whose every phoneme
    lasts frames_per_phoneme mel frames: random duration weights can round every phoneme to 0 frames."""
    config = FastTalkerConfig.from_yaml("tiny").model_dump()
    config["layout"] = layout
    if voices:
        config["speakers"] = [{"name": name, "language": "en"} for name in voices]
    config = FastTalkerConfig.model_validate(config)
    torch.manual_seed(0)
    model = FastTalker(config)
    duration = model.variance_adaptor.duration_predictor.linear_layer
    with torch.no_grad():
        duration.weight.zero_()
        duration.bias.fill_(math.log1p(frames_per_phoneme))  # the predictor's output is log(1 + frames)
    return save_checkpoint(folder, model, config)
