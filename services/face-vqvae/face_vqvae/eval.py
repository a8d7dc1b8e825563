"""Evaluate a stage-2 checkpoint (LVE, MVE, MEE, CE, FDD, diversity): `python -m face_vqvae.eval ...`.

Vertices come from a linear rig file (`--rig rig.npz`: `template` [V, 3], `basis` [D, V, 3] displacement per
unit of each layout channel, `lip` and `upper` vertex indices). That is exact for ARKit blendshapes; for
FLAME it linearises the jaw rotation (upstream runs full FLAME skinning, which needs the licensed model).
Without a rig, ARKit-52 is scored on the weight curves themselves: each of the 52 channels is a 1-d
"vertex", jaw* and mouth* are the lip set, brow* and eye* the upper face (units: weight², not metres).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from face_vqvae.data import stage_dataset
from face_vqvae.layouts import LAYOUTS, MotionLayout
from face_vqvae.loading import build_model, resolve
from face_vqvae.metrics import FaceMetrics
from face_vqvae.settings import FaceVqvaeSettings
from face_vqvae.style import StyleVocabulary
from face_vqvae.train import SpeechFeatures


def rig_vertices(raw: np.ndarray, template: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """raw [..., T, D] in rig units -> vertices [..., T, V, 3]."""
    return template + np.einsum("...td,dvc->...tvc", raw, basis)


def curve_rig(layout: MotionLayout) -> dict[str, np.ndarray]:
    """A rig whose vertices are the layout's own channels (identity basis), for scoring without a mesh."""
    if layout.name != "arkit-52":
        raise SystemExit(f"{layout.name} curves have no lip/upper-face channel sets: pass --rig")
    names = layout.channel_names
    return {
        "template": np.zeros((layout.dims, 1), np.float32),
        "basis": np.eye(layout.dims, dtype=np.float32)[:, :, None],
        "lip": np.array([i for i, n in enumerate(names) if n.startswith(("jaw", "mouth"))]),
        "upper": np.array([i for i, n in enumerate(names) if n.startswith(("brow", "eye"))]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="YAML path or name in configs/ (default: the checkpoint's own)")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rig", type=Path, help="linear rig .npz; ARKit-52 without one: scored on curves")
    parser.add_argument("--split", default="test")
    parser.add_argument("--samples", type=int, default=10, help="samples per test sequence (upstream: 10)")
    parser.add_argument("--temperature", type=float, default=0.2, help="0 = argmin (upstream default 0.2)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--trust-pickle", action="store_true")
    parser.add_argument("--out", type=Path, help="write the metrics JSON here as well")
    args = parser.parse_args(argv)

    config, state = resolve(
        FaceVqvaeSettings(checkpoint=args.checkpoint, config=args.config, trust_pickle=args.trust_pickle)
    )
    layout = LAYOUTS[config.layout]
    styles = StyleVocabulary.from_config(config.style)
    model = build_model(config, state).to(args.device)
    rig = dict(np.load(args.rig)) if args.rig else curve_rig(layout)
    template, basis = rig["template"], rig["basis"]
    metrics = FaceMetrics(
        rig["lip"].tolist(), rig["upper"].tolist(), template, np.random.default_rng(args.seed)
    )
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    dataset = stage_dataset(args.data, config, 2, args.split)
    if not len(dataset):
        raise SystemExit(f"no {args.split} sequences with a matching wav/ under {args.data} ({dataset.rule})")
    # The data repeats each clip across emotions and intensities: its speech features are computed once.
    features = SpeechFeatures(model, frozen=True)
    with torch.inference_mode():
        for sample in dataset:
            item, motion = sample["item"], sample["motion"]
            audio = features(sample["wave"].to(args.device), motion.shape[0])
            style = styles.encode(item.identity, item.emotion, item.intensity)[None].to(args.device)
            z_hat = model.predict_latent(audio, style)
            pred = model.sample(z_hat, args.samples, args.temperature, generator)[0]
            gt_raw = layout.from_model(motion[: pred.shape[1]]).numpy()
            pred_raw = layout.from_model(pred).float().cpu().numpy()
            metrics.update(rig_vertices(gt_raw, template, basis), rig_vertices(pred_raw, template, basis))
    result = {"sequences": len(dataset), "space": "rig" if args.rig else "curves", **metrics.compute()}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
