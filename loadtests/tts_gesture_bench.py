"""Benchmark tts-gesture: real-time factor and first-chunk latency of one checkpoint on one device.

    python loadtests/tts_gesture_bench.py --checkpoint demo --device cpu --threads 1
    python loadtests/tts_gesture_bench.py --checkpoint demo --device cuda --threads 1

Over a fixed set of sentences in the first voice's language, at batch 1 (tts_gesture.inference.Synthesizer,
as the predictor runs it): RTF = seconds of compute per second of audio of a whole synthesis, and the
first-chunk latency = seconds from the call to the first phrase's audio and motion. Medians of --repeats
runs after one warm-up. Writes the device's row into loadtests/results/tts-gesture.json, keeping the other
rows; a device this machine lacks gets a "not measured" row with the command that measures it. Speed is
reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from machine import torch_machine
from tts_gesture.inference import Synthesizer
from tts_gesture.predictor import TtsGestureSettings

RESULT = Path(__file__).parent / "results" / "tts-gesture.json"
DEVICES = ("cpu", "cuda")
SENTENCES = {
    "en": [
        "Hello, and welcome to the show.",
        "The quick brown fox jumps over the lazy dog.",
        "Please put the blue folder on the table, next to the lamp.",
        "We measured the latency twice: once at noon, and once at midnight.",
        "If the build fails again, read the log from the top, not from the bottom.",
        "Thank you!",
        "She said that the river was calm, the boats moved slowly, and nobody was in a hurry.",
        "Numbers like 42 and 1,000 are spelled out before they are spoken.",
    ],
    "zh": [
        "你好，欢迎收看节目。",
        "今天天气很好，我们去公园散步吧。",
        "请把蓝色的文件夹放在桌子上，台灯旁边。",
        "谢谢！",
        "如果构建再次失败，请从头开始阅读日志。",
        "河水很平静，船慢慢地移动，没有人着急。",
    ],
}


def timed_stream(synthesizer: Synthesizer, text: str) -> tuple[float, float, float]:
    """(first chunk s, whole s, audio s) of one streamed synthesis."""
    start = time.perf_counter()
    first, audio_s = None, 0.0
    for chunk in synthesizer.stream(text):
        first = time.perf_counter() - start if first is None else first
        audio_s += chunk.audio_s
    return first, time.perf_counter() - start, audio_s


def measure(synthesizer: Synthesizer, sentences: list[str], repeats: int) -> dict[str, Any]:
    timed_stream(synthesizer, sentences[0])  # warm-up: first-call allocations, CUDA kernels
    rows = []
    for text in sentences:
        runs = [timed_stream(synthesizer, text) for _ in range(repeats)]
        first, whole = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        audio_s = runs[0][2]
        rows.append(
            {
                "text": text,
                "phrases": len(synthesizer.plan(text).phrases),
                "audio_s": round(audio_s, 3),
                "compute_s": round(whole, 4),
                "rtf": round(whole / audio_s, 4) if audio_s else None,
                "first_chunk_s": round(first, 4),
            }
        )
    compute, audio = sum(r["compute_s"] for r in rows), sum(r["audio_s"] for r in rows)
    firsts = [r["first_chunk_s"] for r in rows]
    return {
        "rtf": round(compute / audio, 4) if audio else None,
        "first_chunk_p50_s": round(statistics.median(firsts), 4),
        "first_chunk_max_s": round(max(firsts), 4),
        "audio_s": round(audio, 3),
        "sentences": rows,
    }


def command(checkpoint: str, device: str, threads: int) -> str:
    return (
        f"python loadtests/tts_gesture_bench.py --checkpoint {checkpoint} --device {device} "
        f"--threads {threads}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="demo", help="a checkpoint folder or a name in checkpoints/")
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (deploy/ uses 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--note", action="append", default=[], help="a note on the run's conditions")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here")

    load_before = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    folder = TtsGestureSettings(checkpoint=Path(args.checkpoint)).checkpoint_dir()
    started = time.perf_counter()
    synthesizer = Synthesizer.from_checkpoint(folder, args.device)
    load_s = time.perf_counter() - started
    voice = synthesizer.voices[0]
    row = {
        "command": command(args.checkpoint, args.device, args.threads),
        "voice": f"{voice.name} ({voice.language})",
        "torch_threads": args.threads,
        "load_s": round(load_s, 3),
        **measure(synthesizer, SENTENCES[voice.language], args.repeats),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": torch_machine(load_before),
        "notes": args.note,
    }
    if args.device == "cuda":
        row["gpu"] = torch.cuda.get_device_name()
        row["gpu_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    config = synthesizer.config
    report.update(
        benchmark="tts-gesture: RTF (compute s per audio s, batch 1, whole synthesis) and first-chunk "
        "latency (call to the first phrase's chunk), medians of repeats after a warm-up",
        checkpoint=str(folder),
        model={
            "parameters_m": round(sum(p.numel() for p in synthesizer.model.parameters()) / 1e6, 2),
            "vocoder": config.vocoder.kind,
            "layout": config.layout,
            "sampling_rate": config.audio.sampling_rate,
        },
    )
    results = report.setdefault("results", {})
    results[args.device] = row
    for device in set(DEVICES) - set(results):
        results[device] = {
            "status": f"not measured: no run on a machine with a {device} device yet",
            "command": command(args.checkpoint, device, args.threads),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(
        f"{args.device}: RTF {row['rtf']}, first chunk p50 {row['first_chunk_p50_s']} s "
        f"(max {row['first_chunk_max_s']} s) over {row['audio_s']} s of audio; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
