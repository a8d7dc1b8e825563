"""Benchmark face-vqvae on this CPU: real-time factor, throughput and peak memory, direct and through Triton.

Each config runs in its own worker process (so its peak RSS is its own): the predictor alone at batch 1 and
with a batch of equal-length requests. Then a real tritonserver hosts the same config and is called one
request at a time and by concurrent clients, whose requests its dynamic batcher groups. Prints a table and
writes loadtests/results/face-vqvae.json. Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml
from machine import torch_machine

ROOT = Path(__file__).resolve().parents[1]
RESULT = Path(__file__).parent / "results" / "face-vqvae.json"
DEPLOY = ROOT / "services" / "face-vqvae" / "deploy" / "triton.yaml"
DEMO_CHECKPOINT = ROOT / "services" / "face-vqvae" / "checkpoints" / "demo" / "stage2.pt"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0890.wav")


def predictor_config(name: str, threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """tiny and full: seeded random weights (they cost the same as trained ones); demo: its checkpoint."""
    config: dict[str, Any] = (
        {"checkpoint": "demo"} if name == "demo" else {"config": name, "allow_random_init": True}
    )
    return config | ({"num_threads": threads} if threads else {}) | {"device": device}


def speech() -> tuple[bytes, float]:
    """(WAV bytes, seconds): 5.3 s of read speech (LibriVox, pocketsphinx-testdata) or a modulated tone."""
    if LIBRIVOX.is_file():
        data = LIBRIVOX.read_bytes()
    else:
        t = np.arange(5 * 16000) / 16000
        wave = 0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        buffer = io.BytesIO()
        sf.write(buffer, wave.astype(np.float32), 16000, format="WAV")
        data = buffer.getvalue()
    info = sf.info(io.BytesIO(data))
    return data, info.frames / info.samplerate


def requests(name: str, count: int) -> tuple[list[bytes], float]:
    """(count serialized requests, seeds 0.., for the config's first identity; audio seconds)."""
    from face_vqvae.loading import resolve
    from face_vqvae.settings import load_settings
    from orate.v1.common_pb2 import Audio
    from orate.v1.models_pb2 import FaceVqvaeRequest

    identity = resolve(load_settings(**predictor_config(name)))[0].style.identities[0]
    audio, seconds = speech()
    style = {"identity": identity, "emotion": "neutral", "intensity": 0, "temperature": 0.2}
    bodies = [
        FaceVqvaeRequest(audio=Audio(data=audio), seed=seed, **style).SerializeToString()
        for seed in range(count)
    ]
    return bodies, seconds


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def worker(name: str, batch: int, repeats: int, threads: int | None, device: str) -> dict[str, Any]:
    """Direct predictor timings of one config (run in a child process, so the peak RSS is its own)."""
    import torch
    from face_vqvae.predictor import FaceVqvaePredictor
    from orate.v1.models_pb2 import FaceVqvaeRequest

    started = time.perf_counter()
    predictor = FaceVqvaePredictor(**predictor_config(name, threads, device))
    predictor.load()
    load_s = time.perf_counter() - started
    bodies, seconds = requests(name, batch)
    many = [FaceVqvaeRequest.FromString(b) for b in bodies]
    predictor.predict(many[:1])  # warm-up: first-call allocations and dispatch
    single = statistics.median(timed(lambda: predictor.predict(many[:1]), repeats))
    batched = statistics.median(timed(lambda: predictor.predict(many), max(1, repeats // 2)))
    return {
        "audio_s": round(seconds, 2),
        "load_s": load_s,
        "batch1_s": single,
        "batch1_rtf": single / seconds,
        f"batch{batch}_s": batched,
        f"batch{batch}_requests_per_s": batch / batched,
        f"batch{batch}_rtf_per_request": batched / batch / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
        **gpu_figures(device),
    }


def gpu_figures(device: str) -> dict[str, Any]:
    """The card and its peak allocated memory, when the predictor ran on CUDA."""
    import torch

    if not device.startswith("cuda"):
        return {}
    return {
        "gpu": torch.cuda.get_device_name(device),
        "gpu_peak_allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20,
    }


def peak_rss_mb(pids: list[int]) -> dict[str, float]:
    """VmHWM (peak resident set) per process name, in MB (the largest of same-named processes)."""
    peaks: dict[str, float] = {}
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in status:
            if line.startswith("VmHWM:"):
                peaks[name] = max(peaks.get(name, 0.0), int(line.split()[1]) / 1024)
    return peaks


def triton(
    name: str, concurrency: int, count: int, run_dir: Path, threads: int | None, device: str
) -> dict[str, Any]:
    """One request at a time, then `count` requests from `concurrency` clients, on a real tritonserver."""
    from shared.serving.clients import TritonClient
    from shared.serving.local import local_triton, triton_counts
    from shared.stack.processes import session_members

    deployments = yaml.safe_load(DEPLOY.read_text())
    deployments["deployments"][0]["predictor_config"] = predictor_config(name, threads, device)
    deployments["deployments"][0]["max_batch_size"] = concurrency
    file = run_dir / f"{name}.yaml"
    file.write_text(yaml.safe_dump(deployments))
    with local_triton(file, run_dir / name, timeout_s=300) as server:
        client = TritonClient(server.grpc_address, "face-vqvae")
        bodies, seconds = requests(name, count)
        client.predict(bodies[0], 600)  # warm-up
        sequential = statistics.median(timed(lambda: client.predict(bodies[0], 600), 3))
        before = triton_counts(server.metrics_url, "face-vqvae")
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(lambda b: timed(lambda: client.predict(b, 600), 1)[0], bodies))
        wall = time.perf_counter() - start
        after = triton_counts(server.metrics_url, "face-vqvae")
        client.close()
        executions = after[1] - before[1]
        return {
            "sequential_s": sequential,
            "sequential_rtf": sequential / seconds,
            f"concurrent{concurrency}_requests_per_s": count / wall,
            f"concurrent{concurrency}_p50_s": statistics.median(latencies),
            f"concurrent{concurrency}_max_s": max(latencies),
            "mean_batch": (after[0] - before[0]) / executions if executions else float("nan"),
            "peak_rss_mb": peak_rss_mb(session_members(server.pid)),
        }


def print_table(results: dict[str, dict[str, Any]], batch: int) -> None:
    nan = float("nan")
    print(
        f"{'config':<6} {'RTF b1':>7} {f'RTF/req b{batch}':>11} {f'req/s b{batch}':>9} {'RSS MB':>7} "
        f"{'triton RTF 1x':>13} {f'triton req/s {batch}x':>16} {'mean batch':>10} {'stub MB':>8}"
    )
    for name, row in results.items():
        d, t = row["direct"], row.get("triton", {})
        stub = max(
            (v for k, v in t.get("peak_rss_mb", {}).items() if k.startswith("triton_python")), default=nan
        )
        print(
            f"{name:<6} {d['batch1_rtf']:>7.3f} {d[f'batch{batch}_rtf_per_request']:>11.3f} "
            f"{d[f'batch{batch}_requests_per_s']:>9.2f} {d['peak_rss_mb']:>7.0f} "
            f"{t.get('sequential_rtf', nan):>13.3f} {t.get(f'concurrent{batch}_requests_per_s', nan):>16.2f} "
            f"{t.get('mean_batch', nan):>10.2f} {stub:>8.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", nargs="+", default=["tiny", "demo", "full"])
    parser.add_argument(
        "--batch", type=int, default=8, help="direct batch size and Triton client concurrency"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, help="torch threads per predictor (default: torch's, all cores)"
    )
    parser.add_argument("--device", default="cpu", help="torch device of the predictors, e.g. cuda")
    parser.add_argument("--no-triton", action="store_true")
    parser.add_argument("--note", action="append", default=[], help="a note on the run's conditions")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.repeats, args.threads, args.device)))
        return

    configs = [c for c in args.configs if c != "demo" or DEMO_CHECKPOINT.is_file()]
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fvq-bench-") as tmp:
        for name in configs:
            child = [sys.executable, __file__, "--worker", name]
            child += ["--batch", str(args.batch), "--repeats", str(args.repeats)]
            child += ["--threads", str(args.threads)] if args.threads else []
            child += ["--device", args.device]
            done = subprocess.run(child, capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"{name} worker failed:\n{done.stderr[-3000:]}")
            results[name] = {"direct": json.loads(done.stdout.strip().splitlines()[-1])}
            if not args.no_triton:
                results[name]["triton"] = triton(
                    name, args.batch, 2 * args.batch, Path(tmp), args.threads, args.device
                )
            print(name, json.dumps(results[name]), flush=True)
    report = {
        "benchmark": f"face-vqvae predictor on {args.device}: direct, and through Triton's dynamic batcher",
        "machine": torch_machine(load_before),
        "device": args.device,
        "request": "one 5.3 s LibriVox clip, neutral, intensity 0, one sample at temperature 0.2",
        "notes": [
            "tiny and full run seeded random weights (same cost as trained ones); demo is checkpoints/demo",
            "full runs Whisper-base on 30 s windows (one per request up to 30 s); demo on 10 s windows",
            "rtf = compute seconds per audio second (below 1 is faster than real time)",
            "direct batches hold equal-length requests: one predictor pass; Whisper still runs per request",
            "the 2-core CPU was shared with other work: load averages are recorded, times are medians of"
            " 3 (batch 1) or 1 (batched) runs, and repeat runs moved by up to 2x",
            "torch_threads per row (--threads); on this shared CPU torch's default of 2 threads ran several"
            " times slower than 1 (oversubscription), hence num_threads: 1 in deploy/",
            *args.note,
        ],
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(results, args.batch)


if __name__ == "__main__":
    main()
