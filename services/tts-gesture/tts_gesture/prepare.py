"""`python -m tts_gesture.prepare`: turn data folders into a training cache of `TrainingItem`s.

    python -m tts_gesture.prepare --config demo --studio DIR [DIR ...] --out CACHE [--workers 2]
    python -m tts_gesture.prepare --config full --beat2 BEAT2_DIR --out CACHE   # needs a SMPL-X model file

Writes CACHE/train.pt and CACHE/dev.pt (lists of `TrainingItem.state()`; the studio's `test` rows and
BEAT2's `val` split are dev) and
CACHE/stats.json (per-speaker pitch and energy statistics of the training split, and how many items were
skipped because their recorded words did not match the g2p's).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch

from tts_gesture.config import AudioConfig, FastTalkerConfig
from tts_gesture.data import AlignmentError, TrainingItem, speaker_stats
from tts_gesture.data.studio import read_sequence, split_ids
from tts_gesture.text import G2PError


def _read(job: tuple[str, dict], audio: AudioConfig) -> tuple[dict | None, str]:
    folder, record = job
    try:
        return read_sequence(Path(folder), record, audio).state(), ""
    except (AlignmentError, G2PError) as exc:  # words that do not match, or text the g2p cannot read
        return None, f"{record['id']}: {exc}"


def prepare(
    config: FastTalkerConfig, studio: list[Path], out: Path, workers: int, beat2: Path | None = None
) -> dict:
    jobs, splits = [], {}
    for folder in studio:
        splits.update(split_ids(folder))
        records = [json.loads(line) for line in (folder / "gestures.jsonl").read_text().splitlines()]
        jobs += [(str(folder), r) for r in records]
    read = partial(_read, audio=config.audio)
    if workers > 1:
        # spawn, not fork: a forked child of a process whose torch threads already run can deadlock.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(read, jobs, chunksize=8))
    else:
        results = [read(job) for job in jobs]
    items = [TrainingItem.from_state(state) for state, _ in results if state is not None]
    skipped = [reason for state, reason in results if state is None]
    if beat2 is not None:
        for split in ("train", "val"):
            for item in _beat2_items(beat2, config, split):
                splits[item.id] = split
                items.append(item)
    names = {s.name for s in config.speakers}
    unknown = sorted({u.speaker for u in items} - names)
    if unknown:
        raise SystemExit(f"speakers {unknown} are not in the config's speakers {sorted(names)}")
    train = [u for u in items if splits[u.id] == "train"]
    dev = [u for u in items if splits[u.id] != "train"]
    out.mkdir(parents=True, exist_ok=True)
    torch.save([u.state() for u in train], out / "train.pt")
    torch.save([u.state() for u in dev], out / "dev.pt")
    frames = sum(u.mel.shape[0] for u in train)
    summary = {
        "train": len(train),
        "dev": len(dev),
        "train_hours": round(frames / config.audio.frame_rate / 3600, 3),
        "skipped": len(skipped),
        "skipped_examples": skipped[:10],
        "stats": {k: asdict(v) for k, v in speaker_stats(train).items()},
        "sources": [str(f) for f in studio] + ([str(beat2)] if beat2 else []),
    }
    (out / "stats.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _beat2_items(folder: Path, config: FastTalkerConfig, split: str) -> list[TrainingItem]:
    from shared.rigs.smplx import load_smplx
    from tts_gesture.data.beat2 import load_beat2

    smplx = load_smplx()
    if smplx is None:
        raise SystemExit("BEAT2's foot contacts need a SMPL-X model file: set ORATE_RIGS__SMPLX_MODEL")
    return list(load_beat2(folder, config.audio, smplx, split=split))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="demo")
    parser.add_argument("--studio", type=Path, nargs="*", default=[], help="data studio gesture folders")
    parser.add_argument("--beat2", type=Path, help="a BEAT2 folder (EMAGE's speaker-2 split)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if not args.studio and args.beat2 is None:
        parser.error("give --studio folders, --beat2, or both")
    summary = prepare(
        FastTalkerConfig.from_yaml(args.config), args.studio, args.out, args.workers, args.beat2
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "skipped_examples"}))


if __name__ == "__main__":
    main()
