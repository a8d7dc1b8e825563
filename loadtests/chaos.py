"""Chaos: two-stage jobs at a steady rate while the stack's processes are killed at random moments.

Phase 1 submits `--jobs` jobs of `fixture-two-stage` (Ray Serve, then Triton, with an artifact between
them) at `--rate` jobs/s through the REST API, and meanwhile SIGKILLs the engine, a runner, the API and
Redis (each `--kills` times) and restarts the broker with SIGTERM (`--kills` times), at random moments
(seeded), each restarted by the stack's supervisor. Clients retry a submit with its Idempotency-Key until
it is accepted, as a real client would. Then it checks that every accepted job reached exactly one
terminal state and exactly one terminal CloudEvent on `orate.events` (distinct event ids; redeliveries of
the same id are counted apart), that no job is lost, and that every completed job's outputs are there
(its artifact downloads). Phase 2 SIGKILLs the broker itself mid-load and reports what that loses: jobs
accepted but never finished, and terminal events never delivered.

    .venv/bin/python loadtests/chaos.py                      # 1,000 jobs at 5/s, 2 kills of each
    .venv/bin/python loadtests/chaos.py --jobs 200 --kills 1  # a short run
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from shared import events
from shared.bus import Consumer, Topics
from shared.media import encode_wav
from shared.stack.config import StackConfig, free_stack_ports
from shared.stack.control import Stack, StackUrls, running_stack

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
RESULTS = ROOT / "loadtests" / "results" / "chaos.json"
PIPELINE = "fixture-two-stage"
TERMINAL = {"succeeded", "failed", "cancelled"}
SUBMIT_GIVE_UP_S = 120.0
FINISH_TIMEOUT_S = 600.0
EVENTS_IDLE_S = 15.0


def upload() -> str:
    t = np.arange(8000) / 16000
    wav = encode_wav((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return base64.b64encode(wav).decode()


class EventLog:
    """Every CloudEvent on the events topic, read by a consumer group of its own from the beginning."""

    def __init__(self, urls: StackUrls, topic: str) -> None:
        settings = urls.kafka_settings()
        self._consumer = Consumer(settings, f"chaos-{uuid.uuid4().hex[:8]}", [topic], "chaos")
        self.seen: list[dict] = []
        self.last_arrival = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                records = self._consumer.poll_batch(500, 0.2)
            except Exception:  # the broker is restarting: librdkafka reconnects by itself
                time.sleep(0.2)
                continue
            for record in records:
                self.seen.append(json.loads(record.value))
                self.last_arrival = time.monotonic()
                self._consumer.processed(record)

    def wait_idle(self, idle_s: float, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() - self.last_arrival < idle_s and time.monotonic() < deadline:
            time.sleep(0.5)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


class Client:
    """Submits with retries under the same Idempotency-Key, so a submit the API took before it died is not
    submitted twice, and one it never acknowledged is sent again."""

    def __init__(self, api_url: str, audio_b64: str) -> None:
        self._http = httpx.Client(base_url=api_url, timeout=30)
        self._audio = audio_b64
        self.retries = Counter()

    def submit(self, key: str) -> str | None:
        body = {"pipeline": PIPELINE, "inputs": {"audio": {"base64": self._audio}}}
        give_up = time.monotonic() + SUBMIT_GIVE_UP_S
        while time.monotonic() < give_up:
            try:
                answer = self._http.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
                if answer.status_code == 202:
                    return answer.json()["job_id"]
                self.retries[str(answer.status_code)] += 1
                if answer.status_code < 500 and answer.status_code != 409:
                    return None  # refused for good
            except httpx.HTTPError as exc:
                self.retries[type(exc).__name__] += 1
            time.sleep(0.5)
        return None

    def job(self, job_id: str) -> dict | None:
        for _ in range(60):
            try:
                answer = self._http.get(f"/v1/jobs/{job_id}")
                if answer.status_code == 200:
                    return answer.json()
                if answer.status_code == 404:
                    return None
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        return None

    def artifact_ok(self, job: dict) -> bool:
        url = job["outputs"].get("resampled", {}).get("artifact", {}).get("url")
        if not url:
            return False
        answer = self._http.get(url)
        return answer.status_code == 200 and len(answer.content) > 44

    def close(self) -> None:
        self._http.close()


def component_pid(stack: Stack, name: str) -> int | None:
    for component in stack.status().components:
        if component.name == name and component.alive:
            return component.pid
    return None


def wait_healthy(stack: Stack, name: str, timeout_s: float = 120.0) -> float:
    """Seconds until the component is healthy again."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if any(c.name == name and c.healthy for c in stack.status().components):
            return time.monotonic() - start
        time.sleep(0.2)
    return float("nan")


def kill_plan(
    kills: int, window_s: float, rng: random.Random, runners: list[str]
) -> list[tuple[float, str, int]]:
    """(at seconds, component, signal): each victim `kills` times at random moments of the window, a runner
    of either stage chosen at random each time."""
    victims = [("engine", signal.SIGKILL), ("api", signal.SIGKILL), ("redis", signal.SIGKILL)]
    victims += [("runner", signal.SIGKILL), ("kafka", signal.SIGTERM)]
    plan = [
        (rng.uniform(0.1 * window_s, 0.9 * window_s), rng.choice(runners) if name == "runner" else name, sig)
        for name, sig in victims
        for _ in range(kills)
    ]
    return sorted(plan)


def run_load(
    client: Client, count: int, rate: float, prefix: str, during: list[tuple[float, str, int]], stack: Stack
) -> tuple[dict[str, str], list[dict]]:
    """Submit count jobs at rate while carrying out the kill plan; returns (key -> job id, kills done)."""
    accepted: dict[str, str] = {}
    lock = threading.Lock()

    def fire(i: int) -> None:
        key = f"{prefix}-{i}"
        job_id = client.submit(key)
        if job_id is not None:
            with lock:
                accepted[key] = job_id

    done: list[dict] = []

    def chaos() -> None:
        start = time.monotonic()
        for at, name, sig in during:
            time.sleep(max(0.0, start + at - time.monotonic()))
            pid = component_pid(stack, name)
            if pid is None:
                done.append({"at_s": round(at, 1), "component": name, "skipped": "not running"})
                continue
            os.kill(pid, sig)
            back = wait_healthy(stack, name)
            done.append(
                {
                    "at_s": round(at, 1),
                    "component": name,
                    "signal": signal.Signals(sig).name,
                    "pid": pid,
                    "healthy_again_s": round(back, 1),
                }
            )
            print(f"  {at:6.1f} s  {signal.Signals(sig).name} {name} (pid {pid}); healthy after {back:.1f} s")

    killer = threading.Thread(target=chaos)
    killer.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(64) as pool:
        for i in range(count):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            pool.submit(fire, i)
    killer.join()
    return accepted, done


def audit(client: Client, accepted: dict[str, str], log: EventLog, finish_timeout_s: float) -> dict:
    """Wait for every accepted job to finish (up to a bound) and check states, events and outputs."""
    deadline = time.monotonic() + finish_timeout_s
    jobs: dict[str, dict | None] = {}
    pending = set(accepted.values())
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            job = client.job(job_id)
            jobs[job_id] = job
            if job is not None and job["status"] in TERMINAL:
                pending.discard(job_id)
        if pending:
            time.sleep(2.0)
    log.wait_idle(EVENTS_IDLE_S, timeout_s=120)
    terminal_ids: dict[str, set[str]] = defaultdict(set)
    deliveries = Counter()
    for event in log.seen:
        if event["type"] in events.TERMINAL_TYPES and event["subject"] in jobs:
            terminal_ids[event["subject"]].add(event["id"])
            deliveries[event["id"]] += 1
    statuses = Counter(job["status"] if job else "missing" for job in jobs.values())
    reasons = Counter(job["error"][:120] for job in jobs.values() if job and job["status"] == "failed")
    completed = [job for job in jobs.values() if job and job["status"] == "succeeded"]
    return {
        "jobs_accepted": len(accepted),
        "jobs_completed": statuses["succeeded"],
        "jobs_failed": statuses["failed"],
        "failed_reasons": dict(reasons),
        "jobs_cancelled": statuses["cancelled"],
        "jobs_lost": len(accepted) - sum(statuses[s] for s in TERMINAL),
        "jobs_without_terminal_event": sum(1 for job_id in jobs if not terminal_ids.get(job_id)),
        "duplicate_terminal_events": sum(max(len(ids) - 1, 0) for ids in terminal_ids.values()),
        "terminal_event_redeliveries": sum(n - 1 for n in deliveries.values()),
        "completed_with_missing_outputs": sum(1 for job in completed if not client.artifact_ok(job)),
        "duplicate_job_ids": len(accepted) - len(set(accepted.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5.0, help="jobs submitted per second")
    parser.add_argument("--kills", type=int, default=2, help="how often each component is killed")
    parser.add_argument("--broker-kill-jobs", type=int, default=100, help="jobs of the broker SIGKILL phase")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    run_dir = args.run_dir or Path(f"/tmp/orate-chaos-{uuid.uuid4().hex[:8]}")
    config = StackConfig(
        run_dir=run_dir,
        ports=free_stack_ports(),
        deployments_file=FIXTURES / "deployments.yaml",
        pipeline_dirs=[FIXTURES / "pipelines"],
        prometheus=False,
        topic_prefix=f"chaos{uuid.uuid4().hex[:6]}",
        partitions=3,
        # Jobs pile up while the engine or a runner is down: beyond a tenant's default 100 at once.
        env={"ORATE_API__QUOTA__CONCURRENT_JOBS": "1000000"},
    )
    audio = upload()
    started = time.time()
    with running_stack(config, timeout_s=600) as urls:
        stack = Stack(config)
        assert urls.api_url is not None
        log = EventLog(urls, Topics(config.topic_prefix).events)
        client = Client(urls.api_url, audio)
        runners = ["runner-fixture-resampler", "runner-fixture-loudness"]  # the pipeline's two stages
        plan = kill_plan(args.kills, args.jobs / args.rate, rng, runners)
        print(f"phase 1: {args.jobs} jobs at {args.rate}/s, {len(plan)} kills")
        accepted, kills = run_load(client, args.jobs, args.rate, "chaos", plan, stack)
        chaos = {"jobs_submitted": args.jobs, **audit(client, accepted, log, FINISH_TIMEOUT_S)}
        chaos["kills"] = kills
        chaos["submit_retries"] = dict(client.retries)
        print(json.dumps({k: v for k, v in chaos.items() if k != "kills"}, indent=2))

        count = args.broker_kill_jobs
        print(f"phase 2: {count} jobs at {args.rate}/s, the broker SIGKILLed halfway")
        client.retries.clear()
        broker_plan = [(count / args.rate / 2, "kafka", signal.SIGKILL)]
        accepted2, kills2 = run_load(client, count, args.rate, "brokerkill", broker_plan, stack)
        broker = {"jobs_submitted": count, **audit(client, accepted2, log, finish_timeout_s=180)}
        broker["kills"] = kills2
        broker["submit_retries"] = dict(client.retries)
        print(json.dumps({k: v for k, v in broker.items() if k != "kills"}, indent=2))
        client.close()
        log.close()
    result = {
        "benchmark": "chaos",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
        },
        "command": "python loadtests/chaos.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "run_dir")
        ),
        "started_unix": int(started),
        "wall_s": round(time.time() - started, 1),
        "pipeline": PIPELINE,
        "rate_jobs_per_s": args.rate,
        "phase1_kills_and_restarts": chaos,
        "phase2_broker_sigkill": broker,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
