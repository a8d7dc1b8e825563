"""Checkpoint folders and official layouts.

A checkpoint folder holds `config.yaml` (the whole FastTalkerConfig) and `model.pth` (the state dict; with
`vocoder.kind: ttskit-melgan` the vocoder's weights are left out, as they load from the ttskit wheel). A
public HiFi-GAN generator file loads into the model's vocoder, strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import yaml

from tts_gesture.config import FastTalkerConfig
from tts_gesture.model import FastTalker, Generator

CONFIG_FILE, WEIGHTS_FILE = "config.yaml", "model.pth"


def save_checkpoint(folder: str | Path, model: FastTalker, config: FastTalkerConfig) -> Path:
    """Write config.yaml and model.pth into folder (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    torch.save(_own_weights(model), folder / WEIGHTS_FILE)
    return folder


def load_checkpoint(
    folder: str | Path, device: str | torch.device = "cpu"
) -> tuple[FastTalker, FastTalkerConfig]:
    """The model of a checkpoint folder, strictly loaded, in eval mode, and its config."""
    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"{folder} is not a tts-gesture checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    config = FastTalkerConfig.from_yaml(folder / CONFIG_FILE)
    model = FastTalker(config)
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(model.external_prefixes())]
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint {folder} does not fit its config: missing {missing}, unexpected {unexpected}"
        )
    return model.to(device).eval(), config


def _own_weights(model: FastTalker) -> dict[str, torch.Tensor]:
    """The state dict without weights that load from elsewhere (a packaged vocoder)."""
    external = model.external_prefixes()
    return {k: v for k, v in model.state_dict().items() if not external or not k.startswith(external)}


def load_hifigan_generator(generator: Generator, source: str | Path | Mapping[str, torch.Tensor]) -> None:
    """Load jik876/hifi-gan's `generator_*.pth.tar` (`{"generator": state_dict}`, as its train.py saves it)
    or a bare generator state dict. Strict: a missing or unexpected key, or a shape that differs from the
    config's (`vocoder:` must match the checkpoint's config.json), raises. The public generators were
    trained with centred padding: run them with `vocoder.causal: false`."""
    state = (
        source if isinstance(source, Mapping) else torch.load(source, map_location="cpu", weights_only=True)
    )
    generator.load_state_dict(state.get("generator", state), strict=True)
