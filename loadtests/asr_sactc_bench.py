"""Benchmark asr-sactc on this CPU: SACTC loss against CTC, and inference speed direct and through Triton.

Loss: loadtests/asr_sactc_loss.py (forward+backward at T=500, U=150, B=32, V=5000) is run, or its earlier
figures are merged with --loss-json. Inference, per config, in its own worker process (so its peak RSS is
its own): the predictor at batch 1 and on a batch of all requests, then a real tritonserver hosting it,
called one request at a time and by concurrent clients whose requests its dynamic batcher groups. The
requests are synthetic two-talker mixtures (shared.synth.mixtures). Writes loadtests/results/asr-sactc.json;
speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from machine import torch_machine

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "services" / "asr-sactc"
RESULT = Path(__file__).parent / "results" / "asr-sactc.json"
LOSS_BENCH = Path(__file__).parent / "asr_sactc_loss.py"
DEPLOY = SERVICE / "deploy" / "triton.yaml"
BENCH_VOICES = ["flite:slt", "flite:rms", "espeak:en-us", "espeak:en-us+f3"]
# Random weights never decide to stop, so the full config's joint search is timed with this many output
# tokens: two ~5 s talkers in unigram-5000 pieces.
FULL_JOINT_TOKENS = 60


def predictor_config(name: str, work: Path, decode: str, device: str = "cpu") -> dict[str, Any]:
    """demo: the committed checkpoint (the tiny sizes, trained); full: seeded random weights, the paper's
    sizes, with a stand-in 5000-piece BPE model (the cost of trained weights, not their output). One torch
    thread, as deploy/triton.yaml runs it."""
    common = {"decode": decode, "max_batch_windows": 16, "num_threads": 1, "device": device}
    if name == "demo":
        return {"checkpoint": "demo", **common}
    return {"config": str(full_config(work)), "allow_random_init": True, **common}


def full_config(work: Path) -> Path:
    """configs/full.yaml pointing at a 5000-piece unigram model trained on random letter strings (cached)."""
    path = work / "full.yaml"
    if path.is_file():
        return path
    import sentencepiece as spm

    rng = random.Random(0)
    corpus = work / "corpus.txt"
    words = ["".join(rng.choices(string.ascii_uppercase, k=rng.randint(2, 9))) for _ in range(20000)]
    corpus.write_text("\n".join(" ".join(rng.choices(words, k=12)) for _ in range(20000)) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(work / "bpe"), vocab_size=5000, model_type="unigram",
        user_defined_symbols="$", character_coverage=1.0, num_threads=2, minloglevel=2,
    )  # fmt: skip
    config = yaml.safe_load((SERVICE / "configs" / "full.yaml").read_text())
    config["tokenizer_conf"]["bpemodel"] = str(work / "bpe.model")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def mixtures(work: Path, count: int) -> list[bytes]:
    """count two-talker 16 kHz WAV mixtures (20-50 % overlap), generated once into work/."""
    jsonl = work / "mix" / "mixtures.jsonl"
    if not jsonl.is_file():
        from shared import voices
        from shared.synth.mixtures import generate_mixtures

        installed = [v for v in BENCH_VOICES if v in voices.available_voices()]
        generate_mixtures(work / "mix", count, seed=7, speakers=(2, 2), overlap=(0.2, 0.5), voices=installed)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return [(work / "mix" / r["mixed_wav"]).read_bytes() for r in records[:count]]


def requests(work: Path, count: int) -> tuple[list[bytes], list[float]]:
    """(serialized AsrSactcRequests, audio seconds of each)."""
    import io

    import soundfile as sf
    from orate.v1.common_pb2 import Audio
    from orate.v1.models_pb2 import AsrSactcRequest

    wavs = mixtures(work, count)
    seconds = [sf.info(io.BytesIO(w)).duration for w in wavs]
    return [AsrSactcRequest(audio=Audio(data=w)).SerializeToString() for w in wavs], seconds


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def worker(name: str, work: Path, count: int, device: str) -> dict[str, Any]:
    """Direct predictor timings of one config (a child process, so the peak RSS is its own)."""
    import torch
    from asr_sactc.predictor import AsrSactcPredictor
    from orate.v1.models_pb2 import AsrSactcRequest

    bodies, seconds = requests(work, count)
    batch = [AsrSactcRequest.FromString(b) for b in bodies]
    audio = sum(seconds)
    out: dict[str, Any] = {"requests": count, "audio_s_total": round(audio, 2)}
    for decode in ("greedy", "joint"):
        started = time.perf_counter()
        predictor = AsrSactcPredictor(**predictor_config(name, work, decode, device))
        predictor.load()
        out["load_s"] = time.perf_counter() - started
        if decode == "joint" and name != "demo":
            out[f"joint_batch1_rtf_{FULL_JOINT_TOKENS}_tokens"] = capped_joint(predictor, batch) / audio
            continue
        predictor.predict(batch[:1])  # warm-up: first-call allocations and dispatch
        single = sum(timed(lambda r=r, p=predictor: p.predict([r])) for r in batch)
        together = timed(lambda p=predictor: p.predict(batch))
        out[f"{decode}_batch1_rtf"] = single / audio
        out[f"{decode}_batch{count}_rtf"] = together / audio
        out[f"{decode}_batch{count}_audio_s_per_s"] = audio / together
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["torch_threads"] = torch.get_num_threads()
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(device)
        out["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def capped_joint(predictor: Any, batch: list[Any]) -> float:
    """Seconds to encode each request and run a beam search capped at FULL_JOINT_TOKENS output tokens."""
    import torch
    from asr_sactc.beam_search import joint_beam_search

    from shared.media import load_audio

    model, rate = predictor.recognizer.model, predictor.recognizer.sample_rate
    waves = [torch.from_numpy(load_audio(r.audio.data, target_rate=rate)[0]) for r in batch]

    @torch.no_grad()
    def decode(wave: torch.Tensor) -> None:
        states, _ = model.encode(wave[None], torch.tensor([wave.numel()]))
        joint_beam_search(model, states[0], 10, 0.3, max_len=FULL_JOINT_TOKENS)

    decode(waves[0])  # warm-up
    return sum(timed(lambda w=w: decode(w)) for w in waves)


def triton(name: str, decode: str, concurrency: int, work: Path, device: str) -> dict[str, Any]:
    """Every request one at a time, then all of them from `concurrency` clients, on a real tritonserver."""
    from shared.serving.clients import TritonClient
    from shared.serving.local import local_triton, triton_counts

    deployments = yaml.safe_load(DEPLOY.read_text())
    deployments["deployments"][0]["predictor_config"] = predictor_config(name, work, decode, device)
    deployments["deployments"][0]["max_batch_size"] = concurrency
    run_dir = work / f"triton-{name}-{decode}"
    run_dir.mkdir(exist_ok=True)
    file = run_dir / "deployments.yaml"
    file.write_text(yaml.safe_dump(deployments))
    with local_triton(file, run_dir, timeout_s=300) as server:
        client = TritonClient(server.grpc_address, "asr-sactc")
        bodies, seconds = requests(work, concurrency)
        audio = sum(seconds)
        client.predict(bodies[0], 600)  # warm-up
        sequential = [timed(lambda b=b: client.predict(b, 600)) for b in bodies]
        before = triton_counts(server.metrics_url, "asr-sactc")
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(lambda b: timed(lambda: client.predict(b, 600)), bodies))
        wall = time.perf_counter() - start
        after = triton_counts(server.metrics_url, "asr-sactc")
        client.close()
        executions = after[1] - before[1]
        return {
            "sequential_rtf": sum(sequential) / audio,
            "sequential_p50_s": statistics.median(sequential),
            f"concurrent{concurrency}_rtf": wall / audio,
            f"concurrent{concurrency}_audio_s_per_s": audio / wall,
            f"concurrent{concurrency}_p50_s": statistics.median(latencies),
            f"concurrent{concurrency}_max_s": max(latencies),
            "mean_batch": (after[0] - before[0]) / executions if executions else float("nan"),
        }


def loss_figures(loss_json: Path | None, work: Path) -> dict[str, Any]:
    """The loss benchmark's figures: from loss_json when given, else a fresh run."""
    if loss_json is None:
        loss_json = work / "loss.json"
        subprocess.run([sys.executable, str(LOSS_BENCH), "--out", str(loss_json)], check=True)
    return json.loads(loss_json.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", nargs="+", default=["demo", "full"], choices=["demo", "full"])
    parser.add_argument("--requests", type=int, default=8, help="requests per run and Triton concurrency")
    parser.add_argument("--loss-json", type=Path, help="merge these asr_sactc_loss.py figures, do not rerun")
    parser.add_argument("--device", default="cpu", help="torch device of the predictors, e.g. cuda")
    parser.add_argument("--no-triton", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.work, args.requests, args.device)))
        return

    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="sactc-bench-") as tmp:
        work = Path(tmp)
        loss = loss_figures(args.loss_json, work)
        requests(work, args.requests)  # generated once here, read by every worker
        for name in args.configs:
            child = [sys.executable, __file__, "--worker", name, "--work", str(work), "--device", args.device]
            done = subprocess.run([*child, "--requests", str(args.requests)], capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{name} worker failed:\n{done.stderr[-3000:]}")
            results[name] = {"direct": json.loads(done.stdout.strip().splitlines()[-1])}
            # Random full weights never stop a joint search, so the full config decodes greedily.
            for decode in [] if args.no_triton else ["greedy", "joint"] if name == "demo" else ["greedy"]:
                results[name][f"triton_{decode}"] = triton(name, decode, args.requests, work, args.device)
            print(name, json.dumps(results[name]), flush=True)
    report = {
        "benchmark": "asr-sactc: SACTC loss vs CTC on CPU; inference direct and via Triton's dynamic batcher",
        "machine": torch_machine(load_before),
        "device": args.device,
        "loss": loss,
        "inference": {
            "requests": f"{args.requests} two-talker mixtures (shared.synth.mixtures, 20-50 % overlap)",
            "notes": [
                "demo = checkpoints/demo: the tiny sizes (0.27 M parameters), trained; full = the paper's "
                "sizes (34 M) with seeded random weights and a stand-in 5000-piece BPE model",
                "rtf = compute seconds per audio second (below 1 is faster than real time); batch1 sums "
                "the requests one by one, batchN decodes all of them in one predict() call",
                f"full joint: random weights never end a hypothesis, so the beam search is capped at "
                f"{FULL_JOINT_TOKENS} tokens; through Triton the full config decodes greedily",
                "one torch thread per predictor (deploy/triton.yaml); the 2-core CPU was shared with other "
                "work: the load averages are recorded",
            ],
            "results": results,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
