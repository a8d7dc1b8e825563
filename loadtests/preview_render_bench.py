"""Benchmark preview-render on this CPU: seconds per request for a 5 s clip with speech, as served.

Usage: .venv/bin/python loadtests/preview_render_bench.py [--repeats 3] [--seconds 5] [--size 512]
Calls PreviewRenderPredictor.predict (posing, rasterising on Mesa's llvmpipe, H.264/AAC encoding) one request
at a time: a single 512-pixel panel (the default preview) and a three-panel compare. Requests in a batch
share nothing, so one request's time is the replica's cost per request (loadtests/autoscaling_sim.py reads
it). Writes loadtests/results/preview-render.json with the machine and its load. Speed is reported, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from orate.v1 import common_pb2, models_pb2

from shared.media import encode_wav
from shared.rigs.arkit import ARKIT_INDEX, ARKIT_SHAPES

RESULT = Path(__file__).parent / "results" / "preview-render.json"
FPS = 25


def talking_motion(seconds: float, seed: int) -> common_pb2.Motion:
    """Smooth random speech-like curves: the jaw at syllable rate, smiles and brows drifting."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * FPS)) / FPS
    curves = np.zeros((t.size, len(ARKIT_SHAPES)), np.float32)
    curves[:, ARKIT_INDEX["jawOpen"]] = 0.25 * (1 + np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)))
    for name in ("mouthSmileLeft", "mouthSmileRight", "browDownLeft", "browDownRight", "eyeBlinkLeft"):
        curves[:, ARKIT_INDEX[name]] = 0.3 * (1 + np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6)))
    return common_pb2.Motion(
        layout="arkit-52", fps=FPS, frames=t.size, dims=len(ARKIT_SHAPES), data_f32=curves.tobytes()
    )


def speech(seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return encode_wav((0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)


def timed(predictor, request: models_pb2.PreviewRenderRequest, repeats: int) -> dict:
    predictor.check(request)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        (response,) = predictor.predict([request])
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "median_s": round(statistics.median(walls), 3),
        # CPU seconds of all threads (llvmpipe's and x264's too): the cost on a replica of one core,
        # and what a busy shared machine's wall times overstate.
        "median_cpu_s": round(statistics.median(cpus), 3),
        "runs_s": [round(x, 3) for x in walls],
        "mp4_bytes": len(response.video.data),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    from preview_render.predictor import PreviewRenderPredictor

    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        # The cores are shared, so the load at the start says how much of them this run had.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    start = time.perf_counter()
    predictor = PreviewRenderPredictor()
    predictor.load()
    load_s = time.perf_counter() - start
    audio = common_pb2.Audio(data=speech(args.seconds))
    single = models_pb2.PreviewRenderRequest(
        motion=talking_motion(args.seconds, 0), audio=audio, size=args.size
    )
    compare = models_pb2.PreviewRenderRequest(
        motion=talking_motion(args.seconds, 0),
        compare=[talking_motion(args.seconds, 1), talking_motion(args.seconds, 2)],
        labels=["a", "b", "c"],
        audio=audio,
        size=args.size,
    )
    frames = round(args.seconds * FPS)
    results = {"single": timed(predictor, single, args.repeats), "compare3": timed(predictor, compare, 1)}
    for name, result in results.items():
        result["frames_per_cpu_s"] = round(frames / result["median_cpu_s"], 1)
        print(
            f"{name:9s} {result['median_s']:6.2f} s wall, {result['median_cpu_s']:6.2f} CPU s per"
            f" {args.seconds:g} s request ({result['frames_per_cpu_s']} frames per CPU second)"
        )
    report = {
        "benchmark": "preview-render: PreviewRenderPredictor.predict, one request at a time",
        "command": "python loadtests/preview_render_bench.py",
        "machine": machine,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "clip_seconds": args.seconds,
        "size": args.size,
        "load_s": round(load_s, 2),
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
