"""Soak: the embedded stack under a steady job rate for a long stretch, minute by minute.

Submits `fixture-noop` jobs (two no-op stages, Ray Serve then Triton: the deployments of the spine
benchmark) at --rate jobs/s for --minutes, open loop, and reports per minute of submission: jobs
completed, the orchestration's added latency per stage p50/p99 ((job latency - model time) / 2) and
where it went (the spine benchmark's segments), with the broker's RSS, data size and records held and
the machine's busy share, sampled each minute. The target: every figure flat within 1.5x from the first
minute to the last (the broker's retention window keeps what it holds bounded; the first minutes fill it).

    .venv/bin/python loadtests/soak.py --rate 20 --minutes 30
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from orchestrator.process import freeze_heap
from spine_overhead import (
    DEPLOYMENTS,
    FIXTURES,
    SEGMENTS,
    Arrivals,
    Submitter,
    busy_pct,
    machine,
    machine_cpu,
    percentiles,
    segments,
    stack_pids,
)

from shared.bus import Topics, watermarks
from shared.stack.config import StackConfig, free_stack_ports
from shared.stack.control import StackUrls, running_stack
from shared.store import JobStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "loadtests" / "results" / "soak.json"
DRAIN_S = 30.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return round(int(line.split()[1]) / 1024, 1)


def broker_cpu_s(urls: StackUrls) -> float:
    """CPU seconds the broker process has used."""
    times = psutil.Process(stack_pids(urls.run_dir)["kafka"]).cpu_times()
    return times.user + times.system


def broker_sample(urls: StackUrls) -> dict[str, float]:
    pid = stack_pids(urls.run_dir)["kafka"]
    data = urls.run_dir / "kafka"
    held = watermarks(urls.kafka_settings())
    return {
        "broker_rss_mb": rss_mb(pid),
        "broker_data_mb": round(sum(f.stat().st_size for f in data.iterdir() if f.is_file()) / 1e6, 2),
        "broker_records_held": sum(high - low for low, high in held.values()),
    }


def soak(urls: StackUrls, rate: float, minutes: int) -> dict:
    settings = urls.kafka_settings()
    arrivals = Arrivals(settings, Topics(settings.topic_prefix).events, completed_only=True)
    submitter = Submitter(urls.api_url)
    body = json.dumps({"pipeline": "fixture-noop", "inputs": {"tag": "soak"}}).encode()
    sent: dict[str, float] = {}
    rejected: Counter[int | str] = Counter()
    lock = threading.Lock()

    def fire() -> str | None:
        t0 = time.perf_counter()
        try:
            status, answer = submitter.submit(body)
        except OSError as exc:  # counted: an error the pool swallowed would shrink the run unseen
            with lock:
                rejected[type(exc).__name__] += 1
            return None
        if status != 202:
            with lock:
                rejected[status] += 1
            return None
        job_id = json.loads(answer)["job_id"]
        with lock:
            sent[job_id] = t0
        return job_id

    warm = [fire() for _ in range(12)]  # group joins, connections, first model calls
    arrivals.wait_for([job_id for job_id in warm if job_id], 60)
    sent.clear()
    freeze_heap()
    samples = []
    wall_offset_s = time.time() - time.perf_counter()
    start = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        for minute in range(minutes):
            cpu, broker_cpu = machine_cpu(), broker_cpu_s(urls)
            for i in range(int(rate * 60)):
                delay = start + minute * 60 + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(fire)
            samples.append({
                "minute": minute + 1,
                "machine_busy_pct": busy_pct(cpu, machine_cpu()),
                "broker_cpu_pct": round((broker_cpu_s(urls) - broker_cpu) / 60 * 100, 1),
            })  # fmt: skip
            samples[-1].update(broker_sample(urls))
            print(json.dumps(samples[-1]), flush=True)
    arrivals.wait_for(sent, DRAIN_S)
    arrivals.close()
    store = JobStore(urls.redis_settings())
    done = arrivals.times
    completed = [job_id for job_id in sent if job_id in done]
    jobs = {}
    for i in range(0, len(completed), 500):
        jobs.update(store.get_jobs(completed[i : i + 500]))
    store.close()
    per_minute: list[dict[str, list[float]]] = [
        {"added_per_stage": [], **{name: [] for name in SEGMENTS}} for _ in range(minutes)
    ]
    submitted = [0] * minutes
    for t0 in sent.values():
        submitted[min(int((t0 - start) // 60), minutes - 1)] += 1
    for job_id in completed:
        minute = min(int((sent[job_id] - start) // 60), minutes - 1)
        job = jobs[job_id]
        latency = (done[job_id] - sent[job_id]) * 1000
        model = sum(stage.model_latency_ms for stage in job.stages.values())
        bucket = per_minute[minute]
        bucket["added_per_stage"].append((latency - model) / 2)
        at_ms = ((sent[job_id] + wall_offset_s) * 1000, (done[job_id] + wall_offset_s) * 1000)
        for name, values in segments(job, *at_ms).items():
            bucket[name] += values
    rows = []
    for minute, (sample, bucket) in enumerate(zip(samples, per_minute, strict=True)):
        rows.append({
            **sample,
            "submitted": submitted[minute],
            "completed": len(bucket["added_per_stage"]),
            **{name: percentiles(values) for name, values in bucket.items()},
        })  # fmt: skip
    offered = int(rate * 60) * minutes
    return {
        "minutes": rows,
        "offered": offered,
        "jobs": len(sent),
        "completed": len(completed),
        "rejected": dict(rejected),
    }


def ratios(rows: list[dict]) -> dict[str, float]:
    """Last minute over first minute, for each figure that should stay flat."""
    first, last = rows[0], rows[-1]
    was, now = first["added_per_stage"], last["added_per_stage"]
    out = {f"added_per_stage_{q}": round(now[f"{q}_ms"] / was[f"{q}_ms"], 2) for q in ("p50", "p99")}
    for key in ("broker_rss_mb", "broker_data_mb", "broker_records_held", "broker_cpu_pct"):
        out[key] = round(last[key] / max(first[key], 1e-9), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="jobs per second")
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--events-retention-s", type=float, default=StackConfig().broker_events_retention_s)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    config = StackConfig(
        run_dir=Path(f"/tmp/orate-soak-{uuid.uuid4().hex[:6]}"),
        ports=free_stack_ports(),
        deployments_file=DEPLOYMENTS,
        pipeline_dirs=[FIXTURES / "pipelines"],
        prometheus=False,
        broker_events_retention_s=args.events_retention_s,
        # Beyond a tenant's default quotas (600 submits a minute, 100 at once), as the spine benchmark.
        env={
            "ORATE_LOG_LEVEL": "WARNING",
            "ORATE_API__QUOTA__SUBMITS_PER_MINUTE": "1000000",
            "ORATE_API__QUOTA__CONCURRENT_JOBS": "1000000",
        },
    )
    with running_stack(config, timeout_s=300) as urls:
        result = soak(urls, args.rate, args.minutes)
    result = {
        "benchmark": "soak: fixture-noop jobs at a steady rate, per minute of submission",
        "command": f"python loadtests/soak.py --rate {args.rate:g} --minutes {args.minutes}"
        f" --events-retention-s {args.events_retention_s:g}",
        "machine": machine(),
        "rate_jobs_per_s": args.rate,
        "broker_retention_s": {
            "jobs_work_dlq": StackConfig().broker_retention_s,
            "events": args.events_retention_s,
        },
        **result,
        "last_over_first_minute": ratios(result["minutes"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'min':>3} {'done':>5} {'added/stage p50/p99 ms':>23} {'broker RSS MB':>13} {'data MB':>8}"
          f" {'records':>8} {'broker CPU %':>12} {'busy %':>6}")  # fmt: skip
    for row in result["minutes"]:
        added = row["added_per_stage"]
        print(f"{row['minute']:>3} {row['completed']:>5} {added['p50_ms']:>11}/{added['p99_ms']:<11}"
              f" {row['broker_rss_mb']:>13} {row['broker_data_mb']:>8} {row['broker_records_held']:>8}"
              f" {row['broker_cpu_pct']:>12} {row['machine_busy_pct']:>6}")  # fmt: skip
    print(f"offered {result['offered']}, accepted {result['jobs']}, completed {result['completed']}")
    print("rejected submits:", result["rejected"], "last/first minute:", result["last_over_first_minute"])


if __name__ == "__main__":
    main()
