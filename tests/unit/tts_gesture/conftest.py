"""Shared fixtures for tts-gesture unit tests: the tiny config (dropout off where a test needs determinism),
a tiny model and a small synthetic batch with consistent lengths."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tts_gesture.batch import Batch
from tts_gesture.config import FastTalkerConfig
from tts_gesture.layouts import LAYOUTS
from tts_gesture.model import FastTalker, build_fasttalker
from tts_gesture.model.frame_rates import motion_frames
from tts_gesture.text import text_to_sequence


@pytest.fixture(scope="session")
def tiny_config() -> FastTalkerConfig:
    return FastTalkerConfig.from_yaml("tiny")


@pytest.fixture
def tiny_model(tiny_config: FastTalkerConfig) -> FastTalker:
    torch.manual_seed(0)
    return build_fasttalker(tiny_config)


@pytest.fixture
def batch_for() -> Callable[[FastTalkerConfig], Batch]:
    """make_batch, as a fixture (test modules here are not a package)."""
    return make_batch


def make_batch(config: FastTalkerConfig, seed: int = 0) -> Batch:
    """Two utterances (an English and a Mandarin voice) with random targets of consistent lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = [text_to_sequence("Hello world, this is a test.", "en"), text_to_sequence("你好，欢迎。", "zh")]
    b, length = len(ids), max(map(len, ids))
    texts = torch.zeros(b, length, dtype=torch.long)
    for i, seq in enumerate(ids):
        texts[i, : len(seq)] = torch.tensor(seq)
    src_lens = torch.tensor([len(seq) for seq in ids])
    valid = torch.arange(length).unsqueeze(0) < src_lens.unsqueeze(1)
    durations = torch.randint(1, 6, (b, length), generator=g) * valid
    mel_lens = durations.sum(dim=1)
    t = int(mel_lens.max())
    motion_lens = torch.tensor([motion_frames(int(n), config.audio.frame_rate) for n in mel_lens])
    tm, layout = int(motion_lens.max()), LAYOUTS[config.layout]
    return Batch(
        speakers=torch.tensor([0, 1]),
        texts=texts,
        src_lens=src_lens,
        durations=durations,
        pitches=torch.randn(b, length, generator=g) * valid,
        energies=torch.randn(b, length, generator=g) * valid,
        mels=torch.randn(b, t, config.audio.num_mels, generator=g) - 4.0,
        onsets=(torch.rand(b, t, generator=g) < 0.2).float(),
        mel_lens=mel_lens,
        pose=torch.randn(b, tm, layout.pose_dims, generator=g),
        expression=torch.rand(b, tm, layout.expression_dims, generator=g),
        translation=torch.randn(b, tm, 3, generator=g),
        foot_contact=(torch.rand(b, tm, 4, generator=g) < 0.5).float(),
        motion_lens=motion_lens,
    )
