"""From settings to a stage-2 model: pick the checkpoint and its config, apply overrides, build and load."""

from __future__ import annotations

import math

import torch

from face_vqvae.checkpoints import load_probtalk3d, read_checkpoint
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.model import ProbTalk3D, build_probtalk3d
from face_vqvae.settings import FaceVqvaeSettings

StateDict = dict[str, torch.Tensor]


class NoCheckpointError(ValueError):
    """No checkpoint is configured and random weights were not asked for."""


def resolve(settings: FaceVqvaeSettings) -> tuple[FaceVqvaeConfig, StateDict | None]:
    """(model config, stage-2 state dict or None for random weights) the settings describe.

    The config is `settings.config` when set, else the one train.py stored in the checkpoint, else `full`;
    the encoder and audio-length overrides apply on top.
    """
    file = settings.checkpoint_file()
    if file is None and not settings.allow_random_init:
        raise NoCheckpointError(
            "face-vqvae has no checkpoint: set ORATE_FACE_VQVAE__CHECKPOINT (or predictor_config.checkpoint) "
            "to a stage-2 file or to `demo`; allow_random_init serves random weights, for tests only"
        )
    state, stored = read_checkpoint(file, settings.trust_pickle) if file is not None else (None, None)
    if settings.config is not None:
        config = FaceVqvaeConfig.from_yaml(settings.config, settings.assets_dir / "configs")
    elif stored is not None:
        config = FaceVqvaeConfig.model_validate(stored)
    else:
        config = FaceVqvaeConfig.from_yaml("full", settings.assets_dir / "configs")
    if settings.audio_encoder is not None:
        config.audio_encoder.name = settings.audio_encoder
    if settings.audio_encoder_path is not None:
        config.audio_encoder.path = settings.audio_encoder_path
    if settings.max_audio_s is not None:
        config.limits.max_audio_s = settings.max_audio_s
    # Validated again: an override may contradict the rest (a HuBERT name with a Whisper-only option).
    config = FaceVqvaeConfig.model_validate(config.model_dump())
    if math.ceil(config.limits.max_audio_s * config.fps) > config.model.max_len:
        raise ValueError("limits.max_audio_s is longer than the positional table (model.max_len frames)")
    return config, state


def build_model(config: FaceVqvaeConfig, state: StateDict | None, init_seed: int = 0) -> ProbTalk3D:
    """The stage-2 model in eval mode: checkpoint weights, or seeded random ones when state is None."""
    # A private RNG stream: equal seeds give equal random weights in every replica, and the process's
    # global generator is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = build_probtalk3d(config)
    if state is not None:
        load_probtalk3d(model, state, audio_pretrained=config.audio_encoder.has_weights)
    return model.eval()
