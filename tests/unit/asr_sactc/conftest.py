"""Shared fixtures for the asr-sactc tests: a small random-weight model in the whisper-base layout."""

import copy
from typing import Any

import pytest
from asr_sactc.config import load_config
from asr_sactc.settings import SERVICE_DIR


@pytest.fixture
def whisper_small_config() -> dict[str, Any]:
    """configs/whisper-base.yaml with random weights of a small Whisper shape on 4 s windows (200 encoder
    positions, top block trainable) and Whisper-base's real vocabulary."""
    config = copy.deepcopy(load_config(SERVICE_DIR / "configs" / "whisper-base.yaml"))
    config["frontend_conf"] = {"n_mels": 80, "chunk_s": 4}
    config["encoder_conf"] = {
        "model": None,
        "trainable_blocks": 1,
        "output_size": 32,
        "num_blocks": 2,
        "attention_heads": 2,
        "linear_units": 64,
        "max_source_positions": 200,
    }
    config["decoder_conf"] = {"model": None, "attention_heads": 2, "linear_units": 64, "num_blocks": 1}
    return config
