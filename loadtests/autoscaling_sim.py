"""Replays traffic traces through the chart's autoscaling rules and reports replicas, GPU-hours and queueing.

Usage: python loadtests/autoscaling_sim.py [--values charts/orate/values.yaml] [--gpu-values FILE]
Writes loadtests/results/autoscaling.json and one PNG per trace (loadtests/results/autoscaling_<trace>.png,
when matplotlib is installed). Deterministic for a seed. A benchmark: it prints numbers and never fails.

The model of each model server, from the shipped chart values and the measured benchmarks:
- a replica runs one batch at a time: up to max_batch_size requests, taking t(b) = t1 + (b - 1) * slope
  seconds, fitted to the batch-1 and batch-8 figures of loadtests/results/<model>.json (CPU figures: no GPU
  was lent, so a GPU replica is modelled as fast as the measured CPU one, which overstates every delay);
- ray backend: Ray Serve's default policy: replicas report ongoing requests (queued + running) every
  metrics_interval_s, averaged over look_back_period_s; desired = ceil(average / target_ongoing_requests);
  a change is applied once it has been wanted for upscale_delay_s / downscale_delay_s;
- triton backend: KEDA's three Prometheus triggers through the HPA: requests served per second per pod and
  pending requests per pod (AverageValue), mean queueing delay over the last minute (Value), all seen
  through a 15 s scrape and the HPA's 15 s sync;
  the HPA's 10 % tolerance, its scale-up (at most 4 pods or 100 % per 15 s) and scale-down (1 pod per
  60 s) policies, and the stabilization windows the chart sets;
- a new replica serves after the model's cold start (pod scheduled on a warm GPU node, image cached,
  model loaded) and holds its GPUs (the chart's `gpus`) from the moment it is created.
Queueing delay is arrival to the start of the request's batch (Triton's batch wait of 10-20 ms is left out).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import platform
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "loadtests" / "results"
SCRAPE_S = 15.0  # Prometheus scrape interval of the chart's monitors
HPA_SYNC_S = 15.0
RAY_METRICS_INTERVAL_S = 10.0  # Ray Serve's autoscaling_config defaults
RAY_LOOK_BACK_S = 30.0
RAY_CONTROL_LOOP_S = 1.0  # Serve's controller decides every 0.1 s; 1 s is close enough here
HPA_TOLERANCE = 0.1
TIMELINE_STEP_S = 60.0
P99_LIMIT_S = 2.0
GPU_HOURS_LIMIT = 0.6


@dataclass(frozen=True)
class Profile:
    """A model server's measured batch times and its cold start."""

    name: str
    batch1_s: float
    batch8_s: float
    cold_start_s: float
    source: str

    def batch_s(self, size: int) -> float:
        return self.batch1_s + (size - 1) * (self.batch8_s - self.batch1_s) / 7


def measured_profiles() -> dict[str, Profile]:
    """Batch times of the full-size models from their benchmark files (Triton, CPU)."""
    face = json.loads((RESULTS / "face-vqvae.json").read_text())["results"]["full"]["triton"]
    asr = json.loads((RESULTS / "asr-sactc.json").read_text())["inference"]["results"]["full"][
        "triton_greedy"
    ]
    preview = json.loads((RESULTS / "preview-render.json").read_text())
    # CPU seconds of one 5 s preview at 512 pixels (posing, rasterising, encoding): a replica's cost per
    # request on its one requested core; batches share nothing (one GL context renders them in turn).
    preview_s = preview["results"]["single"]["median_cpu_s"]
    return {
        "face-vqvae": Profile(
            "face-vqvae",
            face["sequential_s"],
            face["concurrent8_p50_s"],
            60.0,
            "face-vqvae.json full/triton: sequential_s, concurrent8_p50_s (5.3 s clip)",
        ),
        "asr-sactc": Profile(
            "asr-sactc",
            asr["sequential_p50_s"],
            asr["concurrent8_p50_s"],
            60.0,
            "asr-sactc.json full/triton_greedy: sequential_p50_s, concurrent8_p50_s (4.2 s mixtures)",
        ),
        "preview-render": Profile(
            "preview-render",
            preview_s,
            8 * preview_s,
            45.0,
            "preview-render.json single/median_cpu_s (5 s clip, 512 px), batches share nothing",
        ),
    }


@dataclass(frozen=True)
class Policy:
    backend: str
    min_replicas: int
    max_replicas: int
    max_batch: int
    target_ongoing: float
    target_rps: float
    target_pending: float
    target_queue_ms: float
    upscale_delay_s: float
    downscale_delay_s: float
    polling_s: float
    gpus: int


def chart_policies(values_files: list[Path]) -> dict[str, Policy]:
    """The autoscaling settings the chart ships (later files override earlier ones, as with helm -f)."""
    values: dict = {}
    for path in values_files:
        values = merge(values, yaml.safe_load(path.read_text()))
    policies = {}
    for name, model in values["models"].items():
        if not model["enabled"]:
            continue
        scaling = model["autoscaling"]
        policies[name] = Policy(
            model["backend"],
            model["minReplicas"],
            model["maxReplicas"],
            model["spec"]["max_batch_size"],
            scaling["targetOngoingRequests"],
            scaling["targetRequestsPerSecond"],
            scaling["targetPendingRequests"],
            scaling["targetQueueMs"],
            scaling["upscaleDelaySeconds"],
            scaling["downscaleDelaySeconds"],
            values["keda"]["pollingInterval"],
            model["gpus"],
        )
    return policies


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


# --- traces: request rate over time, relative to the model's capacity at max replicas -------------------


def trace_rate(trace: str, t: np.ndarray, capacity: float) -> np.ndarray:
    if trace == "steady":
        return np.full_like(t, 0.35 * capacity)
    if trace == "diurnal":
        # Trough 5 % of capacity at 03:00, peak 60 % at 15:00.
        phase = np.cos(2 * np.pi * (t / 86400 - 15 / 24))
        return capacity * (0.05 + 0.55 * (0.5 + 0.5 * phase) ** 2)
    if trace == "burst":
        # 10 % of capacity, and 6x that (60 %) for 10 minutes from minute 40, reached in 30 s.
        ramp = np.clip((t - 2400) / 30, 0, 1) * np.clip((3000 - t) / 30, 0, 1)
        return capacity * (0.1 + 0.5 * ramp)
    raise ValueError(trace)


TRACE_SECONDS = {"steady": 7200.0, "diurnal": 86400.0, "burst": 7200.0}
# Each trace starts on a system that has served its first rate for this long, not on an idle one.
WARM_UP_S = 1800.0


def arrivals(trace: str, capacity: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson arrival times with the trace's rate (thinning), after WARM_UP_S at its first rate."""
    duration = WARM_UP_S + TRACE_SECONDS[trace]

    def rate(t: np.ndarray) -> np.ndarray:
        return trace_rate(trace, np.maximum(t - WARM_UP_S, 0), capacity)

    peak = float(rate(np.linspace(0, duration, 20001)).max())
    candidates = np.cumsum(rng.exponential(1 / peak, size=int(peak * duration * 1.1) + 1000))
    candidates = candidates[candidates < duration]
    return candidates[rng.random(candidates.size) < rate(candidates) / peak]


# --- the simulation -------------------------------------------------------------------------------------


@dataclass
class Replica:
    ready_at: float
    busy_until: float = 0.0
    running: int = 0
    draining: bool = False


class Simulation:
    """Event-driven: arrivals, batch completions, replicas becoming ready and autoscaler ticks."""

    def __init__(self, profile: Profile, policy: Policy, fixed: int | None = None) -> None:
        self.profile, self.policy, self.fixed = profile, policy, fixed
        self.replicas: dict[int, Replica] = {}
        self.next_id = 0
        self.queue: deque[float] = deque()
        self.events: list[tuple[float, int, str, int]] = []
        self.seq = 0
        self.waits: list[float] = []
        self.started_log: deque[tuple[float, float]] = deque()  # (start time, wait) of the last minute
        self.ongoing_samples: deque[tuple[float, float]] = deque()
        self.history: deque[tuple[float, int]] = deque()  # HPA recommendations (time, replicas)
        self.wanted: tuple[int, float] | None = None  # Ray: (direction of the wanted change, since when)
        self.last_sample = -math.inf
        self.last_scale_down = -math.inf
        self.pending_seen = 0  # last scraped Triton pending count
        self.replica_seconds = 0.0
        self.last_t = 0.0
        for _ in range(fixed or policy.min_replicas):
            self.add_replica(0.0, ready_at=0.0)

    def push(self, t: float, kind: str, rid: int = -1) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, rid))

    def add_replica(self, now: float, ready_at: float) -> None:
        self.replicas[self.next_id] = Replica(ready_at)
        if ready_at > now:
            self.push(ready_at, "ready", self.next_id)
        self.next_id += 1

    def remove_replicas(self, count: int) -> None:
        # Starting replicas go first, then idle ones; busy ones finish their batch (graceful drain).
        order = sorted(self.replicas, key=lambda r: (-self.replicas[r].ready_at, self.replicas[r].running))
        for rid in [r for r in order if not self.replicas[r].draining][:count]:
            if self.replicas[rid].running:
                self.replicas[rid].draining = True
            else:
                del self.replicas[rid]

    def live(self) -> int:
        return sum(not r.draining for r in self.replicas.values())

    def dispatch(self, now: float) -> None:
        for rid, rep in self.replicas.items():
            if not self.queue:
                return
            if rep.draining or rep.running or rep.ready_at > now:
                continue
            size = min(len(self.queue), self.policy.max_batch)
            for _ in range(size):
                arrived = self.queue.popleft()
                self.started_log.append((now, now - arrived))
                if arrived >= WARM_UP_S:
                    self.waits.append(now - arrived)
            rep.running, rep.busy_until = size, now + self.profile.batch_s(size)
            self.push(rep.busy_until, "done", rid)

    def ongoing(self) -> int:
        return len(self.queue) + sum(r.running for r in self.replicas.values())

    def scale_to(self, now: float, desired: int) -> None:
        current = self.live()
        if desired > current:
            for _ in range(desired - current):
                self.add_replica(now, now + self.profile.cold_start_s)
        elif desired < current:
            self.remove_replicas(current - desired)

    def ray_tick(self, now: float) -> None:
        if now - self.last_sample >= RAY_METRICS_INTERVAL_S:
            self.ongoing_samples.append((now, self.ongoing()))
            self.last_sample = now
        while self.ongoing_samples and self.ongoing_samples[0][0] < now - RAY_LOOK_BACK_S:
            self.ongoing_samples.popleft()
        average = sum(v for _, v in self.ongoing_samples) / max(1, len(self.ongoing_samples))
        p = self.policy
        desired = min(p.max_replicas, max(p.min_replicas, math.ceil(average / p.target_ongoing)))
        current = self.live()
        direction = (desired > current) - (desired < current)
        if direction == 0:
            self.wanted = None
            return
        if self.wanted is None or self.wanted[0] != direction:
            self.wanted = (direction, now)
        if now - self.wanted[1] >= (p.upscale_delay_s if direction > 0 else p.downscale_delay_s):
            self.scale_to(now, desired)
            self.wanted = None

    def hpa_tick(self, now: float) -> None:
        p, current = self.policy, self.live()
        recent = [w for t, w in self.started_log if t >= now - 60]
        delay_ms = 1000 * sum(recent) / len(recent) if recent else 0.0
        served_per_s = len(recent) / 60
        proposals = [
            math.ceil(served_per_s / p.target_rps),
            math.ceil(self.pending_seen / p.target_pending),
            math.ceil(current * delay_ms / p.target_queue_ms),
        ]
        desired = max(proposals)
        if current and abs(desired / current - 1) <= HPA_TOLERANCE:
            desired = current
        desired = min(p.max_replicas, max(p.min_replicas, desired))
        self.history.append((now, desired))
        while self.history and self.history[0][0] < now - max(p.downscale_delay_s, p.upscale_delay_s):
            self.history.popleft()
        if desired > current:
            window = [d for t, d in self.history if t >= now - p.upscale_delay_s]
            target = min(min(window), current + max(4, current))
            self.scale_to(now, max(current, target))
        elif desired < current and now - self.last_scale_down >= 60:
            window = [d for t, d in self.history if t >= now - p.downscale_delay_s]
            target = max(window)
            if target < current:
                self.scale_to(now, current - 1)
                self.last_scale_down = now

    def tick_interval(self) -> float:
        return RAY_CONTROL_LOOP_S if self.policy.backend == "ray" else max(HPA_SYNC_S, self.policy.polling_s)

    def run(self, times: np.ndarray, duration: float) -> dict:
        if self.fixed is None:
            self.push(self.tick_interval(), "tick")
            if self.policy.backend == "triton":
                self.push(SCRAPE_S, "scrape")
        self.push(WARM_UP_S + TIMELINE_STEP_S, "timeline")
        timeline, window_start, last_index = [], 0, 0
        i = 0
        while True:
            next_event = self.events[0][0] if self.events else math.inf
            if i < len(times) and times[i] <= next_event:
                now, kind, rid = float(times[i]), "arrival", -1
                i += 1
            elif next_event <= duration:
                now, _, kind, rid = heapq.heappop(self.events)
            else:
                break
            if now > WARM_UP_S:
                self.replica_seconds += len(self.replicas) * (now - max(self.last_t, WARM_UP_S))
            self.last_t = now
            while self.started_log and self.started_log[0][0] < now - 60:
                self.started_log.popleft()
            if kind == "arrival":
                self.queue.append(now)
            elif kind == "done" and rid in self.replicas:
                rep = self.replicas[rid]
                rep.running = 0
                if rep.draining:
                    del self.replicas[rid]
            elif kind == "scrape":
                self.pending_seen = len(self.queue)
                self.push(now + SCRAPE_S, "scrape")
            elif kind == "tick":
                (self.ray_tick if self.policy.backend == "ray" else self.hpa_tick)(now)
                self.push(now + self.tick_interval(), "tick")
            elif kind == "timeline":
                arrived = sum(1 for t in times[last_index:i] if t >= now - TIMELINE_STEP_S)
                last_index = i
                minute = self.waits[window_start:]
                timeline.append(
                    {
                        "t_s": now - WARM_UP_S,
                        "arrivals_per_s": round(arrived / TIMELINE_STEP_S, 3),
                        "replicas": len(self.replicas),
                        "ready": sum(r.ready_at <= now for r in self.replicas.values()),
                        "queued": len(self.queue),
                        "p99_wait_s": round(float(np.percentile(minute, 99)), 3) if minute else 0.0,
                    }
                )
                window_start = len(self.waits)
                self.push(now + TIMELINE_STEP_S, "timeline")
            self.dispatch(now)
        waits = np.array(self.waits) if self.waits else np.zeros(1)
        oldest_left = duration - self.queue[0] if self.queue else 0.0
        return {
            "requests": len(self.waits),
            "left_queued": len(self.queue),
            "replica_hours": round(self.replica_seconds / 3600, 2),
            "gpu_hours": round(self.policy.gpus * self.replica_seconds / 3600, 2),
            "p50_wait_s": round(float(np.percentile(waits, 50)), 3),
            "p99_wait_s": round(float(np.percentile(waits, 99)), 3),
            "max_wait_s": round(max(float(waits.max()), oldest_left), 2),
            "timeline": timeline,
        }


def simulate(trace: str, profile: Profile, policy: Policy, seed: int) -> dict:
    capacity = policy.max_replicas * policy.max_batch / profile.batch_s(policy.max_batch)
    times = arrivals(trace, capacity, np.random.default_rng(seed))
    duration = WARM_UP_S + TRACE_SECONDS[trace]
    auto = Simulation(profile, policy).run(times, duration)
    # The baseline: the fewest fixed replicas that keep p99 queueing within the limit on this trace.
    for fixed in range(1, policy.max_replicas + 1):
        baseline = Simulation(profile, policy, fixed=fixed).run(times, duration)
        if baseline["p99_wait_s"] <= P99_LIMIT_S:
            break
    ratio = auto["replica_hours"] / baseline["replica_hours"]
    limit = profile.cold_start_s + 5
    return {
        "capacity_requests_per_s": round(capacity, 2),
        "autoscaled": auto,
        "fixed_baseline": {"replicas": fixed, **{k: v for k, v in baseline.items() if k != "timeline"}},
        # GPU-hours over the baseline's equal replica-hours over the baseline's (a GPU count per replica).
        "replica_hours_vs_baseline": round(ratio, 3),
        # The hours and p99 targets are the diurnal trace's (GPU-hours for GPU models, replica-hours, the
        # same ratio, for CPU ones); the longest wait counts on every trace.
        "targets": {
            "max_wait_within_cold_start_plus_5s": auto["max_wait_s"] <= limit,
            **(
                {
                    "p99_wait_within_2s": auto["p99_wait_s"] <= P99_LIMIT_S,
                    f"{'gpu' if policy.gpus else 'replica'}_hours_at_most_60_percent": ratio
                    <= GPU_HOURS_LIMIT,
                }
                if trace == "diurnal"
                else {}
            ),
        },
    }


def summarized(timeline: list[dict], minutes: int) -> list[dict]:
    """The per-minute timeline in windows of `minutes` for the JSON file: mean rate, the most replicas,
    the fewest ready, the longest queue and the worst minute's p99."""
    out = []
    for start in range(0, len(timeline), minutes):
        window = timeline[start : start + minutes]
        out.append(
            {
                "t_s": window[-1]["t_s"],
                "arrivals_per_s": round(sum(p["arrivals_per_s"] for p in window) / len(window), 3),
                "replicas_max": max(p["replicas"] for p in window),
                "ready_min": min(p["ready"] for p in window),
                "queued_max": max(p["queued"] for p in window),
                "p99_wait_s_max": max(p["p99_wait_s"] for p in window),
            }
        )
    return out


def plot(trace: str, results: dict[str, dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 3.2 * len(results)), sharex=True, squeeze=False)
    for ax, (model, result) in zip(axes[:, 0], results.items(), strict=True):
        line = result["autoscaled"]["timeline"]
        hours = [p["t_s"] / 3600 for p in line]
        ax.plot(hours, [p["replicas"] for p in line], label="replicas (incl. starting)", color="tab:blue")
        ax.plot(hours, [p["ready"] for p in line], label="ready", color="tab:cyan", linestyle="--")
        ax.axhline(result["fixed_baseline"]["replicas"], color="grey", linestyle=":", label="fixed baseline")
        ax.set_ylabel("replicas")
        right = ax.twinx()
        right.plot(
            hours, [p["arrivals_per_s"] for p in line], color="tab:orange", alpha=0.6, label="requests/s"
        )
        right.plot(
            hours, [p["p99_wait_s"] for p in line], color="tab:red", label="p99 queueing s (per minute)"
        )
        right.set_ylabel("requests/s · seconds")
        ax.set_title(
            f"{trace} · {model}: {result['autoscaled']['replica_hours']} replica-h "
            f"({100 * result['replica_hours_vs_baseline']:.0f} % of fixed), "
            f"p99 {result['autoscaled']['p99_wait_s']} s"
        )
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel("hours")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--values", type=Path, default=ROOT / "charts" / "orate" / "values.yaml")
    parser.add_argument(
        "--gpu-values", type=Path, default=ROOT / "charts" / "orate" / "ci" / "gpu-values.yaml"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "autoscaling.json")
    args = parser.parse_args()
    profiles, policies = measured_profiles(), chart_policies([args.values, args.gpu_values])
    report = {
        "benchmark": "autoscaling simulator: the chart's shipped rules on steady, diurnal and burst traces",
        "command": "python loadtests/autoscaling_sim.py",
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "values": [str(p.resolve().relative_to(ROOT)) for p in (args.values, args.gpu_values)],
        "assumptions": (__doc__ or "").split("\n\n", 2)[2].strip(),
        "profiles": {name: asdict(p) for name, p in profiles.items()},
        "policies": {name: asdict(p) for name, p in policies.items()},
        "traces": {},
        "plots": {},
    }
    for trace in TRACE_SECONDS:
        results = {
            name: simulate(trace, profiles[name], policy, args.seed) for name, policy in policies.items()
        }
        report["traces"][trace] = results
        png = args.out.parent / f"autoscaling_{trace}.png"
        report["plots"][trace] = (
            str(png.relative_to(ROOT)) if plot(trace, results, png) else "matplotlib missing"
        )
        for result in results.values():
            timeline = result["autoscaled"]["timeline"]
            result["autoscaled"]["timeline"] = summarized(timeline, 10 if len(timeline) > 300 else 2)
        for name, r in results.items():
            a = r["autoscaled"]
            print(
                f"{trace:8s} {name:15s} replica-h {a['replica_hours']:7.2f} (GPU-h {a['gpu_hours']:7.2f})"
                f" vs fixed {r['fixed_baseline']['replica_hours']:7.2f}"
                f" ({r['fixed_baseline']['replicas']} replicas)"
                f" = {100 * r['replica_hours_vs_baseline']:5.1f} %"
                f"  p99 {a['p99_wait_s']:6.3f} s  max {a['max_wait_s']:6.2f} s  targets {r['targets']}"
            )
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
