"""FastTalker modules (paper names; FastSpeech2 and HiFi-GAN parameter names) and the builder."""

from __future__ import annotations

from tts_gesture.config import FastTalkerConfig
from tts_gesture.model.fasttalker import Decoded, FastTalker, FastTalkerOutput
from tts_gesture.model.gesture_decoder import Gesture, GestureDecoder
from tts_gesture.model.hifigan import Generator
from tts_gesture.model.variance_adaptor import FrameFeatures, VarianceAdaptor

__all__ = [
    "Decoded",
    "FastTalker",
    "FastTalkerOutput",
    "FrameFeatures",
    "Generator",
    "Gesture",
    "GestureDecoder",
    "VarianceAdaptor",
    "build_fasttalker",
]


def build_fasttalker(config: FastTalkerConfig) -> FastTalker:
    """A randomly initialised FastTalker sized by the config."""
    return FastTalker(config)
