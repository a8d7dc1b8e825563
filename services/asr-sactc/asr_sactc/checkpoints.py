"""Load ESPnet-layout state dicts (`frontend.*`, `normalize.*`, `encoder.*`, `decoder.*`, `ctc.*`)."""

from collections.abc import Mapping
from pathlib import Path

import torch

# ESPnet's trainer checkpoint (`checkpoint.pth`) nests the weights; averaged models (`*.ave.pth`) do not.
_NESTED_KEYS = ("model", "state_dict")


def read_espnet_state_dict(source: str | Path | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the flat parameter dict of an ESPnet model file, trainer checkpoint or in-memory dict.

    A DataParallel/DDP `module.` prefix is removed.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        state = torch.load(source, map_location="cpu", weights_only=True)
    for key in _NESTED_KEYS:
        if key in state and isinstance(state[key], Mapping):
            state = dict(state[key])
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_espnet_state_dict(
    model: torch.nn.Module, source: str | Path | Mapping[str, torch.Tensor], strict: bool = True
) -> None:
    """Load ESPnet weights into our model; with strict=True any missing, extra or mis-shaped key raises.

    Raises:
        ValueError: listing the missing and unexpected keys and shape mismatches.
    """
    state = read_espnet_state_dict(source)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if mismatched or (strict and (missing or unexpected)):
        raise ValueError(
            "checkpoint does not match the model config:\n"
            + "".join(f"  missing: {k}\n" for k in missing[:20])
            + "".join(f"  unexpected: {k}\n" for k in unexpected[:20])
            + "".join(f"  shape: {m}\n" for m in mismatched[:20])
        )
    model.load_state_dict(state, strict=strict)
