"""Train either stage: `python -m face_vqvae.train --stage 1|2 --config tiny --data DIR --out DIR`."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import time
from pathlib import Path

import torch

from face_vqvae.checkpoints import load_motion_prior, read_state_dict, stage2_state_dict
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.data import MeadDataset, stage_dataset
from face_vqvae.layouts import LAYOUTS
from face_vqvae.losses import FeaturePredictorLoss, MotionPriorLoss
from face_vqvae.model import MotionPrior, ProbTalk3D, build_motion_prior, build_probtalk3d
from face_vqvae.style import StyleVocabulary

logger = logging.getLogger(__name__)


def prior_losses(model: MotionPrior, motion: torch.Tensor, loss_fn: MotionPriorLoss) -> dict:
    """Stage-1 losses of motion [B, T, D] (model space)."""
    motion_pred, quantized = model(motion)
    return loss_fn(motion_pred, motion, quantized.loss)


def predictor_losses(
    model: ProbTalk3D,
    audio: torch.Tensor,
    motion: torch.Tensor,
    style: torch.Tensor,
    loss_fn: FeaturePredictorLoss,
) -> dict:
    """Stage-2 losses of one sequence: paired speech features [1, Ta, A], motion [1, T, D], style [1, S].

    Audio and motion are cut to the shorter of the two, as upstream's `resample_input` does.
    """
    audio, motion = audio[:, : motion.shape[1]], motion[:, : audio.shape[1]]
    quant_pred = model.motion_prior.quantize(model.predict_latent(audio, style)).z_q
    with torch.no_grad():
        quant_ref = model.motion_prior.get_quant(motion).z_q
    return loss_fn(quant_pred, quant_ref, model.motion_prior.motion_decoder(quant_pred), motion)


class SpeechFeatures:
    """Paired speech features of a clip; a fully frozen encoder's are computed once per clip and kept.

    With a frozen pretrained encoder (Whisper-base in `demo.yaml`) the features never change, and computing
    them dominates a CPU step; 3DMEAD-style data also repeats each clip across emotions and intensities, so
    the cache is keyed by the audio itself.
    """

    def __init__(self, model: ProbTalk3D, frozen: bool) -> None:
        self.model = model
        self.frozen = frozen
        self._cache: dict[tuple[str, int], torch.Tensor] = {}

    def __call__(self, wave: torch.Tensor, num_frames: int) -> torch.Tensor:
        """wave [N] at 16 kHz -> [1, T, A] with T <= num_frames."""
        if not self.frozen:
            return self.model.audio_features(wave, num_frames=num_frames)
        key = (hashlib.blake2b(wave.cpu().numpy().tobytes(), digest_size=16).hexdigest(), num_frames)
        if key not in self._cache:
            with torch.no_grad():
                self._cache[key] = self.model.audio_features(wave, num_frames=num_frames)
        return self._cache[key]


def _stage_losses(
    stage: int,
    model: torch.nn.Module,
    sample: dict,
    loss_fn: MotionPriorLoss | FeaturePredictorLoss,
    styles: StyleVocabulary,
    device: str,
    features: SpeechFeatures | None = None,
) -> dict:
    motion = sample["motion"][None].to(device)
    if stage == 1:
        return prior_losses(model, motion, loss_fn)
    item = sample["item"]
    style = styles.encode(item.identity, item.emotion, item.intensity)[None].to(device)
    audio = features(sample["wave"].to(device), motion.shape[1])
    return predictor_losses(model, audio, motion, style, loss_fn)


def _val_totals(
    stage: int,
    model: torch.nn.Module,
    dataset: MeadDataset,
    loss_fn: MotionPriorLoss | FeaturePredictorLoss,
    styles: StyleVocabulary,
    device: str,
    features: SpeechFeatures | None,
) -> list[float]:
    """The total loss of each validation sequence, in eval mode."""
    model.eval()
    with torch.no_grad():
        return [
            float(_stage_losses(stage, model, s, loss_fn, styles, device, features)["total"]) for s in dataset
        ]


class ValidationMonitor:
    """The value early stopping and checkpoint selection watch, from one check's per-sequence totals.

    `project`: the check's mean total. `official`: upstream's `total/val`. Its loss module sums every
    validation sequence since training began and is never reset, and Lightning logs the mean, over the check's
    sequences, of that running average; so old checks keep weighing on it.
    """

    def __init__(self, recipe: str) -> None:
        self.recipe = recipe
        self._sum, self._count = 0.0, 0

    def __call__(self, totals: list[float]) -> float:
        if self.recipe == "project":
            return sum(totals) / len(totals)
        running = []
        for total in totals:
            self._sum, self._count = self._sum + total, self._count + 1
            running.append(self._sum / self._count)
        return sum(running) / len(running)


def build_stage(
    stage: int, config: FaceVqvaeConfig, prior: Path | None, trust_pickle: bool
) -> tuple[torch.nn.Module, MotionPriorLoss | FeaturePredictorLoss, torch.optim.Optimizer]:
    """(model, loss_fn, optimizer) for a stage; stage 2 starts from the stage-1 checkpoint `prior`."""
    layout, train = LAYOUTS[config.layout], config.train
    if stage == 1:
        model = build_motion_prior(config)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=train.lr_stage1, betas=train.betas, eps=train.eps
        )
        return model, MotionPriorLoss(layout), optimizer
    if prior is None:
        raise SystemExit("stage 2 needs --prior (a stage-1 checkpoint)")
    model = build_probtalk3d(config)
    load_motion_prior(model.motion_prior, read_state_dict(prior, trust_pickle))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=train.lr_stage2, betas=train.betas, eps=train.eps)
    return model, FeaturePredictorLoss(layout), optimizer


def _checkpoint(stage: int, model: torch.nn.Module, config: FaceVqvaeConfig) -> dict[str, torch.Tensor]:
    """Weights to save; stage 2 leaves out a frozen pretrained speech encoder (it loads from its source)."""
    if stage == 1:
        return model.state_dict()
    encoder = config.audio_encoder
    return stage2_state_dict(model, with_audio_encoder=encoder.finetune or not encoder.has_weights)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", type=int, choices=(1, 2), required=True)
    parser.add_argument("--config", default="tiny", help="YAML path or name in configs/")
    parser.add_argument("--data", type=Path, required=True, help="folder with param/*.npy and wav/*.wav")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prior", type=Path, help="stage-1 checkpoint (ours or upstream's), stage 2 only")
    parser.add_argument("--epochs", type=int, help="override train.max_epochs")
    parser.add_argument("--max-minutes", type=float, help="stop after the step that passes this wall time")
    parser.add_argument("--val-every", type=int, help="validate every N steps instead of once per epoch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--trust-pickle", action="store_true", help="allow Lightning pickles (trusted files)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)
    started = time.monotonic()
    deadline = started + 60 * args.max_minutes if args.max_minutes is not None else math.inf

    config = FaceVqvaeConfig.from_yaml(args.config)
    styles = StyleVocabulary.from_config(config.style)
    model, loss_fn, optimizer = build_stage(args.stage, config, args.prior, args.trust_pickle)
    model.to(args.device)
    features = SpeechFeatures(model, frozen=not config.audio_encoder.finetune) if args.stage == 2 else None
    datasets = {split: stage_dataset(args.data, config, args.stage, split) for split in ("train", "val")}
    for split, dataset in datasets.items():
        if not len(dataset):  # never fall back to another split: early stopping would watch the wrong data
            speech = " with a matching wav/" if args.stage == 2 else ""
            raise SystemExit(
                f"stage {args.stage}: no {split} sequences{speech} under {args.data} ({dataset.rule})"
            )
    logger.info(
        "stage %d: %d train sequences, %d val sequences (%s)",
        args.stage,
        len(datasets["train"]),
        len(datasets["val"]),
        datasets["val"].rule,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    monitor = ValidationMonitor(config.train.recipe)
    best, stale, history, steps, validated = math.inf, 0, [], 0, 0

    def validate(epoch: int) -> bool:
        """Score the val split and save the weights (project: the best check; official: every check, so the
        file ends as upstream's last.ckpt). True after `patience` checks without a better monitor value."""
        nonlocal best, stale, validated
        totals = _val_totals(args.stage, model, datasets["val"], loss_fn, styles, args.device, features)
        model.train()
        val, watched = sum(totals) / len(totals), monitor(totals)
        validated, elapsed = steps, time.monotonic() - started
        history.append(
            {
                "epoch": epoch,
                "steps": steps,
                "val_total": val,
                "monitor": watched,
                "elapsed_s": round(elapsed, 1),
            }
        )
        logger.info(
            "stage %d epoch %d step %d val total %.5f monitor %.5f (%.0f s)",
            args.stage,
            epoch,
            steps,
            val,
            watched,
            elapsed,
        )
        improved = watched < best
        best, stale = (watched, 0) if improved else (best, stale + 1)
        if improved or config.train.recipe == "official":
            checkpoint = {"state_dict": _checkpoint(args.stage, model, config), "stage": args.stage}
            checkpoint |= {"config": config.model_dump(mode="json"), "epoch": epoch, "steps": steps}
            checkpoint |= {"val_total": val, "monitor": watched}
            torch.save(checkpoint, args.out / f"stage{args.stage}.pt")
        return stale >= config.train.patience

    stop = False
    for epoch in range(args.epochs or config.train.max_epochs):
        model.train()
        # Batch size 1 over whole sequences, in a fresh order each epoch (upstream's setting).
        for index in torch.randperm(len(datasets["train"])).tolist():
            sample = datasets["train"][index]
            losses = _stage_losses(args.stage, model, sample, loss_fn, styles, args.device, features)
            optimizer.zero_grad()
            losses["total"].backward()
            optimizer.step()
            steps += 1
            due = args.val_every and steps - validated >= args.val_every
            # Validate first: a check that runs past the deadline then ends the stage without another one.
            if (due and validate(epoch)) or time.monotonic() > deadline:
                stop = True
                break
        if (stop or not args.val_every) and steps > validated and validate(epoch):
            stop = True
        if stop:
            break
    if steps > validated:
        validate(epoch)
    if time.monotonic() > deadline:
        logger.info("stage %d stopped at the %.1f min budget", args.stage, args.max_minutes)
    (args.out / f"stage{args.stage}_history.json").write_text(json.dumps(history, indent=1))


if __name__ == "__main__":
    main()
