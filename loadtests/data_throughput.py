"""Synthetic-data throughput on this machine (TTS voices, multi-talker mixtures), merged into data.json.

Usage: .venv/bin/python loadtests/data_throughput.py [-n 40] [--out loadtests/results/data.json]
The file is a dict keyed by generator ("voices", "mixtures"; others add theirs), each entry carrying the
machine it was measured on. Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import voices
from shared.synth.mixtures import generate_mixtures
from shared.synth.texts import SENTENCES

FAST_FAMILIES = ("flite", "espeak")


def machine() -> dict:
    def version(args: list[str]) -> str:
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "not installed"
        lines = (out.stdout or out.stderr).strip().splitlines() or ["?"]
        # flite prints a copyright line before its version line.
        return next((line.strip() for line in lines if "version" in line.lower()), lines[0])

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        # The cores are shared, so the load at the start says how much of them this run had.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "engines": {
            "flite": version(["flite", "--version"]),
            "festival": version(["festival", "--version"]),
            "espeak-ng": version(["espeak-ng", "--version"]),
        },
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def bench_voices(per_voice: int) -> dict:
    """Per family: utterances per second and seconds of speech per wall second (one voice after another)."""
    out = {}
    by_family: dict[str, list[str]] = {}
    for info in voices.available_voices().values():
        by_family.setdefault(info.family, []).append(info.id)
    for family, ids in by_family.items():
        count, audio, start = 0, 0.0, time.perf_counter()
        for voice_id in ids:
            for text in SENTENCES[:per_voice]:
                audio += voices.synthesize(text, voice_id).duration_s
                count += 1
        wall = time.perf_counter() - start
        out[family] = {
            "voices": len(ids),
            "utterances": count,
            "utterances_per_s": round(count / wall, 2),
            "audio_s_per_s": round(audio / wall, 2),
        }
        print(f"voices[{family}]: {count / wall:.1f} utterances/s, {audio / wall:.1f} s of speech per s")
    return out


def bench_mixtures(n: int, seed: int) -> dict:
    """Mixtures per second from a cold start (every utterance synthesised), for two voice sets."""
    every = [v.id for v in voices.available_voices().values() if v.language.startswith("en")]
    sets = {"fast_voices": [v for v in every if v.split(":")[0] in FAST_FAMILIES], "all_voices": every}
    out = {}
    for name, pool in sets.items():
        if len(pool) < 3:
            continue
        with tempfile.TemporaryDirectory(prefix="orate-bench-") as tmp:
            start = time.perf_counter()
            jsonl = generate_mixtures(tmp, n, seed, speakers=(1, 3), overlap=(0.0, 0.5), voices=pool)
            wall = time.perf_counter() - start
            records = [json.loads(line) for line in jsonl.read_text().splitlines()]
        audio = sum(r["duration"] for r in records)
        out[name] = {
            "voices": len(pool),
            "mixtures": n,
            "speakers": [1, 3],
            "overlap": [0.0, 0.5],
            "wall_s": round(wall, 2),
            "mixtures_per_s": round(n / wall, 2),
            "mixture_audio_s_per_s": round(audio / wall, 2),
            "mean_mixture_s": round(audio / n, 2),
        }
        print(f"mixtures[{name}]: {n / wall:.2f} mixtures/s, {audio / wall:.1f} s of mixture audio per s")
    return out


def merge(path: Path, key: str, entry: dict) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="mixtures per voice set")
    parser.add_argument("--per-voice", type=int, default=3, help="sentences per voice in the voice benchmark")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data.json")
    args = parser.parse_args(argv)
    host = machine()
    merge(args.out, "voices", {"machine": host, "families": bench_voices(args.per_voice)})
    merge(args.out, "mixtures", {"machine": host, "configs": bench_mixtures(args.n, args.seed)})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
