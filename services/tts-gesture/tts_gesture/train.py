"""Training: one joint step (the TTS and gesture branches teacher-forced, the vocoder on ground-truth mels)
and the `python -m tts_gesture.train` command around it.

    python -m tts_gesture.train --config demo --data CACHE --out CHECKPOINT [--max-minutes 60]

The optimiser is FastSpeech2's Adam (betas (0.9, 0.98), eps 1e-9); the step clips gradients at
`grad_clip_thresh` as FastSpeech2 does. The vocoder sees a ground-truth mel segment
(HiFi-GAN trains on 8192-sample segments), so its loss does not wait for the acoustic model to converge.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from tts_gesture.audio import mel_spectrogram
from tts_gesture.batch import Batch
from tts_gesture.checkpoints import load_checkpoint, save_checkpoint
from tts_gesture.config import FastTalkerConfig
from tts_gesture.data import SpeakerStats, TrainingItem, collate
from tts_gesture.losses import FastTalkerLoss
from tts_gesture.model import FastTalker, FastTalkerOutput


def make_optimizer(model: FastTalker, config: FastTalkerConfig) -> torch.optim.Adam:
    t = config.train
    return torch.optim.Adam(model.parameters(), lr=t.learning_rate, betas=t.betas, eps=t.eps)


def train_step(
    model: FastTalker,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    loss_fn: FastTalkerLoss,
    config: FastTalkerConfig,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Forward, backward and one optimiser step on `batch`; returns every loss before the step."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    output = teacher_forced(model, batch)
    if model.vocoder_trainable:
        segment = _mel_segment(batch, config.train.vocoder_segment_frames, generator)
        vocoded = mel_spectrogram(model.vocode(segment), config.audio)
    else:  # a packaged, frozen vocoder: nothing of it to train
        segment = vocoded = None
    losses = loss_fn(output, batch, vocoded, segment)
    losses["total"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip_thresh)
    optimizer.step()
    return {name: float(value.detach()) for name, value in losses.items()}


def teacher_forced(model: FastTalker, batch: Batch) -> FastTalkerOutput:
    """The model on a batch's own durations, pitch, energy and onsets, the gesture decoder seeded with the
    first seed_frames frames of the real motion."""
    return model(
        batch.speakers,
        batch.texts,
        batch.src_lens,
        pitch_targets=batch.pitches,
        energy_targets=batch.energies,
        duration_targets=batch.durations,
        onset_targets=batch.onsets,
        seed=batch.motion()[:, : model.gesture_decoder.seed_frames],
    )


def _mel_segment(batch: Batch, frames: int, generator: torch.Generator | None) -> torch.Tensor:
    """[B, S, M]: the same random window of every item's ground-truth mel, S <= frames within the shortest."""
    length = min(frames, int(batch.mel_lens.min()))
    start = int(torch.randint(0, int(batch.mel_lens.min()) - length + 1, (1,), generator=generator))
    return batch.mels[:, start : start + length]


# ------------------------------------------------------------------------------------------------ command
def noam_lr(step: int, peak: float, warm_up: int) -> float:
    """FastSpeech2's ScheduledOptim shape (linear warm-up, then step^-0.5), scaled so that it peaks at
    `peak` after `warm_up` steps (upstream's peak is d_model^-0.5 * warm_up^-0.5)."""
    step = max(step, 1)
    return peak * min(step / warm_up, (warm_up / step) ** 0.5)


def length_batches(items: list[TrainingItem], frames: int, rng: random.Random) -> list[list[TrainingItem]]:
    """Items sorted by mel length, cut into batches of at most `frames` padded mel frames, shuffled."""
    ordered = sorted(items, key=lambda u: u.mel.shape[0])
    batches, current = [], []
    for item in ordered:
        if current and (len(current) + 1) * item.mel.shape[0] > frames:
            batches.append(current)
            current = []
        current.append(item)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def read_cache(path: Path) -> list[TrainingItem]:
    return [TrainingItem.from_state(s) for s in torch.load(path, weights_only=False)]


@torch.no_grad()
def dev_losses(model: FastTalker, batches: list[Batch], loss_fn: FastTalkerLoss) -> dict[str, float]:
    """Teacher-forced losses on the dev batches, averaged (the vocoder term left out)."""
    model.eval()
    totals: dict[str, float] = {}
    for batch in batches:
        output = teacher_forced(model, batch)
        for name, value in loss_fn(output, batch, None, None).items():
            totals[name] = totals.get(name, 0.0) + float(value) / len(batches)
    return totals


def _last_step(log_path: Path) -> int:
    lines = log_path.read_text().splitlines() if log_path.exists() else []
    return json.loads(lines[-1])["step"] if lines else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train FastTalker on a prepared cache (tts_gesture.prepare)")
    parser.add_argument("--config", default="demo")
    parser.add_argument(
        "--data", type=Path, required=True, help="cache folder with train.pt, dev.pt, stats.json"
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder (config.yaml, model.pth)")
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument("--max-steps", type=int, default=1_000_000)
    parser.add_argument("--batch-frames", type=int, default=3000, help="padded mel frames per batch")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="go on from the checkpoint and log in --out")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    config = FastTalkerConfig.from_yaml(args.config)
    speakers = [s.name for s in config.speakers]
    stats = {
        name: SpeakerStats(tuple(v["pitch"]), tuple(v["energy"]))
        for name, v in json.loads((args.data / "stats.json").read_text())["stats"].items()
    }
    train, dev = read_cache(args.data / "train.pt"), read_cache(args.data / "dev.pt")
    rate = config.audio.frame_rate
    dev_batches = [collate(b, speakers, stats, rate) for b in length_batches(dev, args.batch_frames, rng)]
    model = load_checkpoint(args.out)[0] if args.resume else FastTalker(config)
    optimizer = make_optimizer(model, config)
    loss_fn = FastTalkerLoss(config.train.loss)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "train.log.jsonl"
    # A resumed run goes on with the step count (and so the learning rate) where the log left off; Adam's
    # moments start afresh (the checkpoint keeps weights only).
    step = _last_step(log_path) if args.resume else 0
    log = log_path.open("a")
    started, cpu_started = time.monotonic(), time.process_time()
    best = float("inf")
    while True:
        for items in length_batches(train, args.batch_frames, rng):
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = noam_lr(step, config.train.learning_rate, config.train.warm_up_step)
            losses = train_step(model, collate(items, speakers, stats, rate), optimizer, loss_fn, config)
            done = (time.monotonic() - started) / 60 >= args.max_minutes or step >= args.max_steps
            if step % args.eval_every == 0 or done:
                dev = dev_losses(model, dev_batches, loss_fn) if dev_batches else losses
                record = {
                    "step": step,
                    "minutes": round((time.monotonic() - started) / 60, 2),
                    "cpu_s": round(time.process_time() - cpu_started, 1),
                    "lr": optimizer.param_groups[0]["lr"],
                    "train": {k: round(v, 4) for k, v in losses.items()},
                    "dev": {k: round(v, 4) for k, v in dev.items()},
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                print(json.dumps({"step": step, "train": losses["total"], "dev": dev["total"]}), flush=True)
                if dev["total"] < best:  # the checkpoint is the best dev loss seen (valid.loss.best)
                    best = dev["total"]
                    save_checkpoint(args.out, model, config)
            if done:
                return


if __name__ == "__main__":
    main()
