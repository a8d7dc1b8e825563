"""Train the SOT+SACTC model: `python -m asr_sactc.train --config configs/tiny.yaml --data DIR --out DIR`."""

import argparse
import fnmatch
import json
import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml

from asr_sactc.checkpoints import pretrained_state, save_delta
from asr_sactc.config import build_model, build_tokenizer, load_config
from asr_sactc.data import LengthBatchSampler, LibriSpeechMixDataset, collate
from asr_sactc.feature_cache import FeatureCache
from asr_sactc.model.espnet_model import ESPnetASRModel

# Utterances used to estimate GlobalMVN statistics (ESPnet's collect_stats uses the whole set).
MVN_UTTERANCES = 500


def warmup_lr_lambda(warmup_steps: int) -> partial:
    """ESPnet WarmupLR (Noam) factor: warmup^0.5 · min(step^-0.5, step · warmup^-1.5)."""
    return partial(_warmup_factor, warmup_steps=warmup_steps)


def _warmup_factor(step: int, warmup_steps: int) -> float:
    step += 1
    return warmup_steps**0.5 * min(step**-0.5, step * warmup_steps**-1.5)


@torch.no_grad()
def estimate_global_mvn(
    model: ESPnetASRModel, loader: torch.utils.data.DataLoader, device: torch.device
) -> None:
    """Fill `normalize.mean/std` from the front-end features of up to MVN_UTTERANCES training mixtures."""
    if model.normalize is None:
        return
    total = sq = None
    count = seen = 0
    for batch in loader:
        feats, lengths = model.frontend(batch["speech"].to(device), batch["speech_lengths"].to(device))
        valid = torch.arange(feats.size(1), device=device)[None, :] < lengths[:, None]
        frames = feats[valid].double()
        total = frames.sum(0) if total is None else total + frames.sum(0)
        sq = (frames**2).sum(0) if sq is None else sq + (frames**2).sum(0)
        count += frames.size(0)
        seen += feats.size(0)
        if seen >= MVN_UTTERANCES:
            break
    model.normalize.set_stats(total, sq, count)


def select_trainable(model: torch.nn.Module, patterns: list[str]) -> int:
    """Train only the parameters whose names match one of the fnmatch patterns; returns their count."""
    count = 0
    for name, param in model.named_parameters():
        param.requires_grad_(any(fnmatch.fnmatchcase(name, p) for p in patterns))
        count += param.numel() if param.requires_grad else 0
    if not count:
        raise ValueError(f"no parameter matches train_conf.trainable {patterns}")
    return count


def batch_loss(
    model: ESPnetASRModel, batch: dict, device: torch.device, cache: FeatureCache | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """The joint loss of one collated batch, from the waveforms or, with a cache, from frozen features."""
    speech, lengths, text, text_lengths = (
        batch[k].to(device) for k in ("speech", "speech_lengths", "text", "text_lengths")
    )
    if cache is None:
        return model(speech, lengths, text, text_lengths)
    hidden, frames = cache.encode([ex.id for ex in batch["examples"]], speech, lengths)
    return model.forward_encoded(model.encoder.top(hidden), frames, text, text_lengths)


@torch.no_grad()
def validate(
    model: ESPnetASRModel,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    cache: FeatureCache | None = None,
) -> dict[str, float]:
    """Mean loss and token accuracy over a validation set (eval mode)."""
    model.eval()
    sums: dict[str, float] = {}
    batches = 0
    for batch in loader:
        _, stats = batch_loss(model, batch, device, cache)
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v
        batches += 1
    model.train()
    return {k: v / max(batches, 1) for k, v in sums.items()}


def train(
    config: dict[str, Any],
    data_dir: Path,
    out_dir: Path,
    device: str,
    max_steps: int | None,
    seed: int,
    max_minutes: float | None = None,
    feature_cache: Path | None = None,
) -> None:
    """Run training; writes config.yaml, train.log.jsonl, last.pth and valid.acc.best.pth under out_dir.

    Stops after max_epoch epochs, max_steps optimiser steps or max_minutes of wall time (counted from the
    first step; the epoch in progress is then validated and saved), whichever comes first. With
    feature_cache, the frozen encoder part runs once per item (`asr_sactc.feature_cache`); SpecAugment,
    which would change the cached features, cannot apply and is refused.
    """
    torch.manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(config)
    model = build_model(config, len(tokenizer.token_list), tokenizer.ids).to(device)
    train_conf = config.get("train_conf") or {}
    if train_conf.get("trainable"):
        print(json.dumps({"trainable_parameters": select_trainable(model, train_conf["trainable"])}))
    # `save: delta` writes only what differs from the pretrained weights (`checkpoints.save_delta`).
    reference = pretrained_state(model) if train_conf.get("save") == "delta" else None

    def save(path: Path) -> None:
        if reference is None:
            torch.save(model.state_dict(), path)
        else:
            save_delta(model, reference, path, getattr(torch, train_conf.get("save_dtype", "float16")))

    make_loader = partial(
        torch.utils.data.DataLoader,
        num_workers=train_conf.get("num_workers", 0),
        collate_fn=partial(collate, tokenizer=tokenizer),
    )
    batch_size = train_conf.get("batch_size", 8)
    train_set = LibriSpeechMixDataset(data_dir / "train.jsonl")
    if train_conf.get("batch_seconds"):
        durations = [train_set.duration(i) for i in range(len(train_set))]
        sampler = LengthBatchSampler(durations, train_conf["batch_seconds"])
        train_loader = make_loader(train_set, batch_sampler=sampler)
    else:
        train_loader = make_loader(train_set, batch_size=batch_size, shuffle=True)
    dev_path = data_dir / "dev.jsonl"
    dev_loader = (
        make_loader(LibriSpeechMixDataset(dev_path), batch_size=batch_size, shuffle=False)
        if dev_path.exists()
        else None
    )
    dev = torch.device(device)
    cache = None
    if feature_cache is not None:
        if model.specaug is not None:
            raise ValueError("SpecAugment changes the encoder input, so its features cannot be cached")
        cache = FeatureCache(feature_cache, model, config)
    estimate_global_mvn(model, train_loader, dev)

    optim_conf = dict(config.get("optim_conf") or {"lr": 1e-3})
    # Parameters that start from scratch (not pretrained) may take a larger rate than fine-tuned ones.
    new_prefixes = tuple(f"{n}." for n, m in model.named_children() if not getattr(m, "pretrained", False))
    groups: dict[bool, list[torch.nn.Parameter]] = {True: [], False: []}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups[name.startswith(new_prefixes)].append(param)
    new_lr = train_conf.get("new_parameter_lr", optim_conf.get("lr", 1e-3))
    optimiser = torch.optim.Adam(
        [{"params": groups[False]}, {"params": groups[True], "lr": new_lr}], **optim_conf
    )
    warmup = (config.get("scheduler_conf") or {}).get("warmup_steps", 25000)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, warmup_lr_lambda(warmup))
    accum = train_conf.get("accum_grad", 1)
    grad_clip = train_conf.get("grad_clip", 5.0)

    written = dict(config, token_list=tokenizer.token_list)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(written, sort_keys=False, allow_unicode=True))
    best_acc, step = -math.inf, 0
    deadline = math.inf if max_minutes is None else time.monotonic() + 60 * max_minutes
    model.train()
    with open(out_dir / "train.log.jsonl", "a", encoding="utf-8") as log:
        for epoch in range(1, train_conf.get("max_epoch", 1) + 1):
            start = time.time()
            for i, batch in enumerate(train_loader):
                loss, stats = batch_loss(model, batch, dev, cache)
                (loss / accum).backward()
                if (i + 1) % accum:
                    continue
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                # As ESPnet: skip the update when a SACTC/CTC edge case produced a non-finite gradient.
                if torch.isfinite(grad_norm):
                    optimiser.step()
                optimiser.zero_grad()
                scheduler.step()
                step += 1
                log.write(
                    json.dumps({"epoch": epoch, "step": step, "lr": scheduler.get_last_lr()[0], **stats})
                    + "\n"
                )
                if (max_steps is not None and step >= max_steps) or time.monotonic() >= deadline:
                    break
            record: dict[str, Any] = {"epoch": epoch, "step": step, "seconds": round(time.time() - start, 1)}
            if dev_loader is not None:
                record["valid"] = validate(model, dev_loader, dev, cache)
                if record["valid"].get("acc", -math.inf) > best_acc:
                    best_acc = record["valid"].get("acc", -math.inf)
                    save(out_dir / "valid.acc.best.pth")
            save(out_dir / "last.pth")
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
            if (max_steps is not None and step >= max_steps) or time.monotonic() >= deadline:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--config", type=Path, required=True, help="YAML config (configs/tiny.yaml, configs/full.yaml)"
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="folder with train.jsonl (and optional dev.jsonl)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for weights, config and log")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this much wall time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--feature-cache", type=Path, default=None, help="folder of frozen-encoder features (Whisper configs)"
    )
    args = parser.parse_args()
    config = load_config(args.config)
    conf = config.get("tokenizer_conf") or {}
    if "bpemodel" in conf and not Path(conf["bpemodel"]).is_absolute():
        conf["bpemodel"] = str((args.config.parent / conf["bpemodel"]).resolve())
    train(
        config,
        args.data,
        args.out,
        args.device,
        args.max_steps,
        args.seed,
        args.max_minutes,
        args.feature_cache,
    )


if __name__ == "__main__":
    main()
