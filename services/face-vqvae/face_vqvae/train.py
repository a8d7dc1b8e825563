"""Train either stage: `python -m face_vqvae.train --stage 1|2 --config tiny --data DIR --out DIR`."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import torch

from face_vqvae.checkpoints import load_motion_prior, read_state_dict
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.data import MeadDataset
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
    wave: torch.Tensor,
    motion: torch.Tensor,
    style: torch.Tensor,
    loss_fn: FeaturePredictorLoss,
) -> dict:
    """Stage-2 losses of one sequence: wave [N] at 16 kHz, motion [1, T, D], style [1, S].

    Audio and motion are cut to the shorter of the two, as upstream's `resample_input` does.
    """
    audio = model.audio_features(wave, num_frames=motion.shape[1])
    motion = motion[:, : audio.shape[1]]
    quant_pred = model.motion_prior.quantize(model.predict_latent(audio, style)).z_q
    with torch.no_grad():
        quant_ref = model.motion_prior.get_quant(motion).z_q
    return loss_fn(quant_pred, quant_ref, model.motion_prior.motion_decoder(quant_pred), motion)


def _stage_losses(
    stage: int,
    model: torch.nn.Module,
    sample: dict,
    loss_fn: MotionPriorLoss | FeaturePredictorLoss,
    styles: StyleVocabulary,
    device: str,
) -> dict:
    motion = sample["motion"][None].to(device)
    if stage == 1:
        return prior_losses(model, motion, loss_fn)
    item = sample["item"]
    style = styles.encode(item.identity, item.emotion, item.intensity)[None].to(device)
    return predictor_losses(model, sample["wave"].to(device), motion, style, loss_fn)


def _mean_val_loss(
    stage: int,
    model: torch.nn.Module,
    dataset: MeadDataset,
    loss_fn: MotionPriorLoss | FeaturePredictorLoss,
    styles: StyleVocabulary,
    device: str,
) -> float:
    model.eval()
    with torch.no_grad():
        totals = [float(_stage_losses(stage, model, s, loss_fn, styles, device)["total"]) for s in dataset]
    return sum(totals) / len(totals) if totals else math.nan


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", type=int, choices=(1, 2), required=True)
    parser.add_argument("--config", default="tiny", help="YAML path or name in configs/")
    parser.add_argument("--data", type=Path, required=True, help="folder with param/*.npy and wav/*.wav")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prior", type=Path, help="stage-1 checkpoint (ours or upstream's), stage 2 only")
    parser.add_argument("--epochs", type=int, help="override train.max_epochs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--trust-pickle", action="store_true", help="allow Lightning pickles (trusted files)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)

    config = FaceVqvaeConfig.from_yaml(args.config)
    styles = StyleVocabulary.from_config(config.style)
    model, loss_fn, optimizer = build_stage(args.stage, config, args.prior, args.trust_pickle)
    model.to(args.device)
    datasets = {
        split: MeadDataset(
            args.data,
            LAYOUTS[config.layout],
            split,
            config.style.identities,
            config.style.emotions,
            need_audio=args.stage == 2,
            sample_rate=config.sample_rate,
        )
        for split in ("train", "val")
    }
    if not len(datasets["train"]):
        raise SystemExit(f"no training items under {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    best, stale, history = math.inf, 0, []
    for epoch in range(args.epochs or config.train.max_epochs):
        model.train()
        # Batch size 1 over whole sequences, in a fresh order each epoch (upstream's setting).
        for index in torch.randperm(len(datasets["train"])).tolist():
            losses = _stage_losses(args.stage, model, datasets["train"][index], loss_fn, styles, args.device)
            optimizer.zero_grad()
            losses["total"].backward()
            optimizer.step()
        val = _mean_val_loss(
            args.stage, model, datasets["val"] or datasets["train"], loss_fn, styles, args.device
        )
        history.append({"epoch": epoch, "val_total": val})
        logger.info("stage %d epoch %d val total %.5f", args.stage, epoch, val)
        if val < best:
            best, stale = val, 0
            torch.save(
                {
                    "state_dict": model.state_dict(),
                    "config": config.model_dump(mode="json"),
                    "stage": args.stage,
                    "epoch": epoch,
                    "val_total": val,
                },
                args.out / f"stage{args.stage}.pt",
            )
        else:
            stale += 1
            if stale >= config.train.patience:
                break
    (args.out / f"stage{args.stage}_history.json").write_text(json.dumps(history, indent=1))


if __name__ == "__main__":
    main()
