"""Official checkpoint layouts: a public HiFi-GAN generator file loads into the model's vocoder, strictly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from tts_gesture.model import Generator


def load_hifigan_generator(generator: Generator, source: str | Path | Mapping[str, torch.Tensor]) -> None:
    """Load jik876/hifi-gan's `generator_*.pth.tar` (`{"generator": state_dict}`, as its train.py saves it)
    or a bare generator state dict. Strict: a missing or unexpected key, or a shape that differs from the
    config's (`vocoder:` must match the checkpoint's config.json), raises. The public generators were
    trained with centred padding: run them with `vocoder.causal: false`."""
    state = (
        source if isinstance(source, Mapping) else torch.load(source, map_location="cpu", weights_only=True)
    )
    generator.load_state_dict(state.get("generator", state), strict=True)
