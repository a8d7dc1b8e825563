"""Load official ProbTalk3D Lightning `.ckpt` files (and this project's own) onto our modules, strictly.

Upstream state_dict keys equal ours except for entries that are not weights, which are dropped:
`*_pos_embedding.pe` (the sinusoid table, [5000, 1, 256], rebuilt here) and `_losses.*` (running loss sums
Lightning saves as buffers). HuBERT's positional conv was saved with the old `weight_norm`
(`weight_g`/`weight_v`), renamed to current transformers' `parametrizations.weight.original0/1`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from face_vqvae.model import MotionPrior, ProbTalk3D

_DROPPED = re.compile(r"(^|\.)(_losses\.|\w+_pos_embedding\.pe$)")
# The speech encoder's weights in a stage-2 state dict.
AUDIO_ENCODER_PREFIX = "feature_extractor.audiomodel."
_RENAMED = {
    ".weight_g": ".parametrizations.weight.original0",
    ".weight_v": ".parametrizations.weight.original1",
}


class CheckpointError(ValueError):
    """A checkpoint that does not fit the configured model (wrong stage, sizes or speech encoder)."""


def read_checkpoint(
    path: str | Path, trust_pickle: bool = False
) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state_dict, the FaceVqvaeConfig dump `train.py` stores beside it, or None) of a checkpoint file.

    Lightning checkpoints pickle their hyper-parameters (OmegaConf objects), which `weights_only` refuses;
    set trust_pickle only for files from a trusted source, since unpickling can run code.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if not trust_pickle:
            raise CheckpointError(
                f"{path} needs full unpickling (Lightning hyper-parameters); pass trust_pickle=True if you "
                "trust its source"
            ) from error
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    config = checkpoint.get("config") if isinstance(checkpoint.get("config"), dict) else None
    return checkpoint.get("state_dict", checkpoint), config


def read_state_dict(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning-style checkpoint (or a bare state dict); see read_checkpoint."""
    return read_checkpoint(path, trust_pickle)[0]


def has_audio_encoder(state_dict: dict[str, torch.Tensor]) -> bool:
    """Whether a stage-2 state dict carries the speech encoder (a frozen encoder is left out by train.py)."""
    return any(key.startswith(AUDIO_ENCODER_PREFIX) for key in state_dict)


def convert_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Upstream key names -> ours: drop non-weights, rename the old weight-norm parameters."""
    converted = {}
    for key, value in state_dict.items():
        if _DROPPED.search(key):
            continue
        for old, new in _RENAMED.items():
            if key.endswith(old) and "pos_conv_embed" in key:
                key = key[: -len(old)] + new
        converted[key] = value
    return converted


def _load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], may_miss: str | None = None) -> None:
    """load_state_dict, failing on any unexpected key or any missing key except those under `may_miss`."""
    result = module.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if may_miss is None or not k.startswith(may_miss)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys (first: {missing[:3]})")
    if result.unexpected_keys:
        problems.append(
            f"unexpected {len(result.unexpected_keys)} keys (first: {result.unexpected_keys[:3]})"
        )
    if problems:
        raise CheckpointError("checkpoint does not match the model: " + "; ".join(problems))


def load_motion_prior(model: MotionPrior, state_dict: dict[str, torch.Tensor]) -> None:
    """Stage-1 weights from a stage-1 checkpoint (bare keys) or a stage-2 one (`motion_prior.*`)."""
    state_dict = convert_official(state_dict)
    if any(k.startswith("motion_prior.") for k in state_dict):
        state_dict = {
            k[len("motion_prior.") :]: v for k, v in state_dict.items() if k.startswith("motion_prior.")
        }
    try:
        _load_strict(model, state_dict)
    except RuntimeError as error:  # size mismatches surface from load_state_dict itself
        raise CheckpointError(str(error)) from error


def load_probtalk3d(
    model: ProbTalk3D, state_dict: dict[str, torch.Tensor], audio_pretrained: bool = False
) -> None:
    """All stage-2 weights: `feature_extractor.audiomodel.*`, `feature_predictor.*`, `motion_prior.*`.

    A checkpoint without the speech encoder (trained frozen, left out to keep the file small) loads only
    when `audio_pretrained` says the model's encoder already holds its pretrained weights; otherwise the
    encoder would silently stay random.
    """
    with_audio = has_audio_encoder(state_dict)
    if not with_audio and not audio_pretrained:
        raise CheckpointError(
            "the checkpoint has no speech-encoder weights (it was trained with a frozen encoder) and the "
            "config's audio_encoder is random: set audio_encoder.path or audio_encoder.pretrained"
        )
    try:
        _load_strict(
            model, convert_official(state_dict), may_miss=None if with_audio else AUDIO_ENCODER_PREFIX
        )
    except RuntimeError as error:
        raise CheckpointError(str(error)) from error


def stage2_state_dict(model: ProbTalk3D, with_audio_encoder: bool) -> dict[str, torch.Tensor]:
    """What train.py saves for stage 2; a frozen pretrained encoder is left out (it loads from its source)."""
    return {
        k: v
        for k, v in model.state_dict().items()
        if with_audio_encoder or not k.startswith(AUDIO_ENCODER_PREFIX)
    }
