"""Train the open-rig FGD motion autoencoder (tts_gesture.motion_ae) on the data studio's gesture triples.

Data: `python -m shared.data_cli gestures --out DIR -n 800 --voices flite:slt,flite:rms --sentences 1 1`
(openrig_30/*.npz `poses_6d` [T, 624], train_test_split.csv). Trains on random 32- or 64-frame crops of the
`train` sequences with EMAGE's autoencoder loss (10 x geodesic rotation error + L1 of velocity and
acceleration, `ae_trainer.py`), Adam with a cosine learning rate over a CPU-time budget; then scores the
`test` sequences and those of any --held-out folders: reconstruction error and FGD sanity checks (held-out
vs training sequences should be small, noise or a frozen mean pose large). Writes weights.pt and config.json
(with those figures) to --out; --evaluate-only scores the model already there again.

    nice -n 19 python services/tts-gesture/scripts/train_motion_ae.py --data DIR [--held-out DIR2]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tts_gesture.metrics import fgd
from tts_gesture.motion_ae import DEFAULT_DIR, WINDOW, MotionAEConfig, MotionAutoencoder, load_motion_ae

from shared.rigs.rotations import matrix_to_rot6d, rot6d_to_matrix

CROPS = (WINDOW, 2 * WINDOW)


def load_split(folder: Path) -> dict[str, list[np.ndarray]]:
    """{'train': [...], 'test': [...]}: each sequence's poses_6d [T, 624] float32."""
    split: dict[str, list[np.ndarray]] = {}
    with (folder / "train_test_split.csv").open() as f:
        for row in csv.DictReader(f):
            with np.load(folder / "openrig_30" / f"{row['id']}.npz") as npz:
                split.setdefault(row["type"], []).append(npz["poses_6d"].astype(np.float32))
    return split


def geodesic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rotation angle (rad) between rot6d poses [..., J*6], per joint [..., J]."""
    ra = rot6d_to_matrix(a.reshape(*a.shape[:-1], -1, 6))
    rb = rot6d_to_matrix(b.reshape(*b.shape[:-1], -1, 6))
    cos = ((ra * rb).sum(dim=(-1, -2)) - 1) / 2
    return torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))


def ae_loss(rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    velocity, target_velocity = rec.diff(dim=1), target.diff(dim=1)
    return (
        10 * geodesic(rec, target).mean()
        + (velocity - target_velocity).abs().mean()
        + (velocity.diff(dim=1) - target_velocity.diff(dim=1)).abs().mean()
    )


def crops(sequences: list[np.ndarray], batch: int, rng: np.random.Generator) -> torch.Tensor:
    length = int(rng.choice(CROPS))
    pool = [s for s in sequences if len(s) >= length]
    out = []
    for k in rng.integers(len(pool), size=batch):
        start = int(rng.integers(len(pool[k]) - length + 1))
        out.append(pool[k][start : start + length])
    return torch.from_numpy(np.stack(out))


def reconstruction(model: MotionAutoencoder, sequences: list[np.ndarray], moving: np.ndarray) -> dict:
    """Mean rotation error (degrees) of whole-window reconstructions, over all bones and the moving ones."""
    errors = []
    with torch.no_grad():
        for s in sequences:
            x = torch.from_numpy(s[: len(s) - len(s) % WINDOW])[None]
            errors.append(geodesic(model(x), x)[0].numpy())
    degrees = np.degrees(np.concatenate(errors))
    return {
        "all_bones_deg": round(float(degrees.mean()), 3),
        "moving_bones_deg": round(float(degrees[:, moving].mean()), 3),
        "moving_bones_p95_deg": round(float(np.percentile(degrees[:, moving], 95)), 3),
    }


def sanity_fgd(model: MotionAutoencoder, seen: list[np.ndarray], held: list[np.ndarray]) -> dict:
    """FGD of the held-out sequences against real sets (an equal-size training subset: the floor the sample
    size sets; all training sequences) and broken ones (shuffled frames, jitter, a frozen pose, noise)."""
    rng = np.random.default_rng(1)
    mean_pose = matrix_to_rot6d(rot6d_to_matrix(np.concatenate(seen).mean(axis=0).reshape(-1, 6))).ravel()

    def jitter(sigma: float) -> list[np.ndarray]:
        return [s + rng.normal(0, sigma, s.shape).astype(np.float32) for s in held]

    variants = {
        "train_subset_same_size": [seen[i] for i in rng.choice(len(seen), len(held), replace=False)],
        "train_all": seen,
        "frames_shuffled": [s[rng.permutation(len(s))] for s in held],
        "rot6d_jitter_0.05": jitter(0.05),
        "rot6d_jitter_0.2": jitter(0.2),
        "frozen_mean_pose": [np.tile(mean_pose, (len(s), 1)).astype(np.float32) for s in held],
        "gaussian_noise": [rng.normal(0, 1, s.shape).astype(np.float32) for s in held],
    }
    return {f"held_out_vs_{name}": round(fgd(model, held, other), 4) for name, other in variants.items()}


def command() -> str:
    return f"python services/tts-gesture/scripts/train_motion_ae.py {shlex.join(sys.argv[1:])}"


def train(model: MotionAutoencoder, sequences: list[np.ndarray], args: argparse.Namespace) -> dict:
    """Adam with a cosine learning rate over the CPU-time budget; returns the steps and CPU seconds."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    budget, start, step = args.cpu_minutes * 60, time.process_time(), 0
    while (elapsed := time.process_time() - start) < budget:
        for group in optimizer.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        model.train()
        x = crops(sequences, args.batch, rng)
        loss = ae_loss(model(x), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step} cpu {elapsed:.0f}s loss {loss.item():.4f}", flush=True)
    model.eval()
    return {
        "command": command(),
        "machine": f"{platform.machine()}, 1 torch thread",
        "steps": step,
        "cpu_s": round(time.process_time() - start),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a data_cli gestures output folder")
    parser.add_argument(
        "--held-out", type=Path, nargs="*", default=[], help="more gestures folders, all held out"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--evaluate-only", action="store_true", help="score the model in --out again")
    parser.add_argument("--cpu-minutes", type=float, default=14.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    split = load_split(args.data)
    sequences, test = split["train"], split["test"]
    held = test + [s for folder in args.held_out for part in load_split(folder).values() for s in part]
    if args.evaluate_only:
        model = load_motion_ae(args.out)
        card = json.loads((args.out / "config.json").read_text())
        card = {k: card[k] for k in ("command", "machine", "steps", "cpu_s")}
    else:
        model = MotionAutoencoder(MotionAEConfig())
        card = train(model, sequences, args)
    frames = np.concatenate(sequences)
    moving = frames.reshape(len(frames), -1, 6).std(axis=0).max(axis=1) > 1e-3
    card = {
        "what": "Orate's open-rig FGD motion autoencoder (NOT EMAGE's AESKConv_240_100)",
        "data": f"data studio gestures: {args.data.name}'s {len(sequences)} train sequences "
        f"({sum(map(len, sequences))} frames); held out: its {len(test)} test sequences and "
        f"{len(held) - len(test)} of {', '.join(f.name for f in args.held_out) or 'no other folder'} "
        f"({sum(map(len, held))} frames), 30 fps",
        **card,
        "parameters": sum(p.numel() for p in model.parameters()),
        "moving_bones": int(moving.sum()),
        "scored_by": command(),
        "reconstruction_held_out": reconstruction(model, held, moving),
        "reconstruction_train": reconstruction(model, sequences[: len(held)], moving),
        "fgd": sanity_fgd(model, sequences, held),
    }
    model.save(args.out, **card)
    print(json.dumps({k: card[k] for k in ("steps", "cpu_s", "reconstruction_held_out", "fgd")}))


if __name__ == "__main__":
    main()
