"""Benchmark: Speaker-Aware CTC loss forward+backward time against plain `F.ctc_loss` on CPU."""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from asr_sactc.sactc import SpeakerAwareCTCLoss

RESULT = Path(__file__).parent / "results" / "asr-sactc.json"


def _time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=500, help="encoder frames T (500 = 16 s at 32 ms)")
    parser.add_argument(
        "--labels", type=int, default=150, help="labels U per utterance, one `$` in the middle"
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=5000, help="BPE 5000 as in the recipe")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the figures here (default: the 'loss' key of RESULT)")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    log_probs = torch.randn(args.batch, args.frames, args.vocab, generator=gen).log_softmax(-1)
    targets = torch.randint(3, args.vocab, (args.batch, args.labels), generator=gen)
    targets[:, args.labels // 2] = 2
    input_lengths = torch.full((args.batch,), args.frames)
    target_lengths = torch.full((args.batch,), args.labels)
    sactc = SpeakerAwareCTCLoss(risk_factor=15.0, order="code")

    def run_ctc() -> None:
        x = log_probs.transpose(0, 1).detach().requires_grad_()
        F.ctc_loss(x, targets, input_lengths, target_lengths, reduction="mean").backward()

    def run_sactc() -> None:
        x = log_probs.detach().requires_grad_()
        sactc(x, targets, input_lengths, target_lengths).backward()

    run_ctc(), run_sactc()  # warm-up: allocator and first-call dispatch
    times: dict[str, list[float]] = {"ctc": [], "sactc": []}
    # Interleaved so that load from other processes on the shared cores hits both alike.
    for _ in range(args.repeats):
        times["ctc"].append(_time_once(run_ctc))
        times["sactc"].append(_time_once(run_sactc))
    median = {k: statistics.median(v) for k, v in times.items()}
    ratio = median["sactc"] / median["ctc"]

    print(
        f"T={args.frames} U={args.labels} B={args.batch} V={args.vocab}, median of {args.repeats}, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"{'loss':<28}{'median s':>10}{'min s':>10}{'max s':>10}")
    for name, label in (("ctc", "F.ctc_loss (fwd+bwd)"), ("sactc", "SpeakerAwareCTCLoss λ=15")):
        print(f"{label:<28}{median[name]:>10.3f}{min(times[name]):>10.3f}{max(times[name]):>10.3f}")
    print(f"ratio sactc/ctc: {ratio:.2f}x (target <= 3x)")

    figures = {
        "benchmark": "asr-sactc loss forward+backward",
        "shape": {
            "frames": args.frames,
            "labels": args.labels,
            "batch": args.batch,
            "vocab": args.vocab,
        },
        "repeats": args.repeats,
        "seconds": times,
        "median_seconds": median,
        "ratio_sactc_over_ctc": round(ratio, 3),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
        return
    # One results file per service: the loss figures are its `loss` key, beside the inference ones.
    results = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    results["loss"] = figures
    RESULT.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
