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
_RENAMED = {
    ".weight_g": ".parametrizations.weight.original0",
    ".weight_v": ".parametrizations.weight.original1",
}


class CheckpointError(ValueError):
    """A checkpoint that does not fit the configured model (wrong stage, sizes or speech encoder)."""


def read_state_dict(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning-style checkpoint (or a bare state dict).

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
    return checkpoint.get("state_dict", checkpoint)


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


def _load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    result = module.load_state_dict(state_dict, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing {len(result.missing_keys)} keys (first: {result.missing_keys[:3]})")
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


def load_probtalk3d(model: ProbTalk3D, state_dict: dict[str, torch.Tensor]) -> None:
    """All stage-2 weights: `feature_extractor.audiomodel.*`, `feature_predictor.*`, `motion_prior.*`."""
    try:
        _load_strict(model, convert_official(state_dict))
    except RuntimeError as error:
        raise CheckpointError(str(error)) from error
