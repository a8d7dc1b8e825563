"""Frozen-encoder features stored once per training item, so the CTC head and decoder train on CPU.

`python -m asr_sactc.feature_cache --config C --data DIR --out CACHE` fills the cache for `train.jsonl` and
`dev.jsonl`; `python -m asr_sactc.train ... --feature-cache CACHE` then reads it (and fills any gap).
"""

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from asr_sactc.config import build_model, build_tokenizer, load_config
from asr_sactc.data import LibriSpeechMixDataset
from asr_sactc.model.espnet_model import ESPnetASRModel

# Bump when the stored layout or the frozen computation changes, so old caches are not read.
FORMAT_VERSION = 1
# Config keys that decide the frozen part's output (the trainable split included: it moves the cut).
_KEYS = ("frontend", "frontend_conf", "encoder", "encoder_conf")


def config_hash(config: dict[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the front-end and encoder settings and the format version."""
    settings = {key: config.get(key) for key in _KEYS} | {"format": FORMAT_VERSION}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class FeatureCache:
    """One file per item, `<root>/<config hash>/<item id>.pt`: the frozen part's output [P, D] (float32, as
    computed) and the item's valid encoder frames. The hash is stored in the file as well and checked.

    Args:
        root: cache folder.
        model: a model whose encoder splits into `frozen` and `top` (the Whisper encoder).
        config: the model's config (its front-end and encoder settings are hashed).
    """

    def __init__(self, root: str | Path, model: ESPnetASRModel, config: dict[str, Any]) -> None:
        if not hasattr(model.encoder, "frozen"):
            raise ValueError(f"{type(model.encoder).__name__} has no frozen part to cache")
        self.model = model
        self.hash = config_hash(config)
        self.dir = Path(root) / self.hash
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, item_id: str) -> Path:
        if not item_id or "/" in item_id or item_id.startswith("."):
            raise ValueError(f"item id {item_id!r} cannot name a cache file")
        return self.dir / f"{item_id}.pt"

    @torch.no_grad()
    def encode(
        self, ids: list[str], speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen features [B, P, D] and valid frames [B] for a batch, computing and storing missing items."""
        stored = {i: self._read(i) for i in ids}
        missing = [n for n, i in enumerate(ids) if stored[i] is None]
        if missing:
            index = torch.tensor(missing)
            feats, frames = self.model.frontend(speech[index], speech_lengths[index])
            hidden = self.model.encoder.frozen(feats)
            for row, n in enumerate(missing):
                item = {"hidden": hidden[row].cpu().contiguous(), "frames": int(frames[row])}
                self._write(ids[n], item)
                stored[ids[n]] = item
        hidden = torch.stack([stored[i]["hidden"] for i in ids]).to(speech.device)
        return hidden, torch.tensor([stored[i]["frames"] for i in ids], device=speech.device)

    def _read(self, item_id: str) -> dict[str, Any] | None:
        path = self.path(item_id)
        if not path.is_file():
            return None
        item = torch.load(path, map_location="cpu", weights_only=True)
        if item.get("config_hash") != self.hash:
            raise ValueError(f"{path} was written for config {item.get('config_hash')}, not {self.hash}")
        return item

    def _write(self, item_id: str, item: dict[str, Any]) -> None:
        path = self.path(item_id)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save({**item, "config_hash": self.hash}, tmp)
        tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="model config (configs/whisper-base.yaml)")
    parser.add_argument("--data", type=Path, required=True, help="folder with train.jsonl (and dev.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="cache folder")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    config = load_config(args.config)
    tokenizer = build_tokenizer(config, args.config.parent)
    model = build_model(config, len(tokenizer.token_list), tokenizer.ids).eval()
    cache = FeatureCache(args.out, model, config)
    for split in ("train", "dev"):
        if not (args.data / f"{split}.jsonl").is_file():
            continue
        dataset = LibriSpeechMixDataset(args.data / f"{split}.jsonl")
        for first in range(0, len(dataset), args.batch_size):
            examples = [dataset[i] for i in range(first, min(first + args.batch_size, len(dataset)))]
            lengths = torch.tensor([len(ex.speech) for ex in examples])
            speech = torch.zeros(len(examples), int(lengths.max()))
            for row, ex in enumerate(examples):
                speech[row, : len(ex.speech)] = torch.from_numpy(ex.speech)
            cache.encode([ex.id for ex in examples], speech, lengths)
        print(json.dumps({"split": split, "items": len(dataset), "cache": str(cache.dir)}), flush=True)


if __name__ == "__main__":
    main()
