"""Client side of the embedded stack: start the supervisor and wait for it, read status, stop it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.bus import BusError, watermarks
from shared.serving import ray_driver
from shared.settings import KafkaSettings, ModelEndpoints, RedisSettings
from shared.stack.config import StackConfig
from shared.stack.processes import (
    ManagedProcess,
    Probe,
    pid_alive,
    read_pid_file,
    spawn,
    stop_process,
)
from shared.stack.supervisor import CONFIG_FILE, PID_FILE, STATE_FILE, SUPERVISOR_MODULE, read_state

# The supervisor itself stops each component within its grace period; this bounds the whole.
DOWN_TIMEOUT_S = 90.0


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says why (with a log tail)."""


@dataclass(frozen=True)
class StackUrls:
    """Where a running stack's services listen (None for components that were not started)."""

    run_dir: Path
    kafka_bootstrap: str
    redis_url: str
    api_url: str | None = None
    api_grpc: str | None = None
    ray_serve_url: str | None = None
    triton_http_url: str | None = None
    triton_grpc_url: str | None = None
    prometheus_url: str | None = None
    # The ORATE_ environment the stack's processes get (for processes a test starts itself).
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StackUrls:
        urls = state["urls"]
        return cls(
            run_dir=Path(state["run_dir"]),
            kafka_bootstrap=urls["kafka"],
            redis_url=urls["redis"],
            api_url=urls.get("api"),
            api_grpc=urls.get("api_grpc"),
            ray_serve_url=urls.get("ray_serve"),
            triton_http_url=urls.get("triton_http"),
            triton_grpc_url=urls.get("triton_grpc"),
            prometheus_url=urls.get("prometheus"),
            env=dict(state.get("env", {})),
        )

    def kafka_settings(self, **overrides: Any) -> KafkaSettings:
        """Settings for the stack's broker as its own processes get them (topic prefix, idle pausing)."""
        stack = {
            "topic_prefix": self.env.get("ORATE_KAFKA__TOPIC_PREFIX", "orate"),
            "idle_fetch_interval_ms": int(self.env.get("ORATE_KAFKA__IDLE_FETCH_INTERVAL_MS", 0)),
        }
        return KafkaSettings(bootstrap_servers=self.kafka_bootstrap, **{**stack, **overrides})

    def redis_settings(self) -> RedisSettings:
        return RedisSettings(url=self.redis_url)

    def model_endpoints(self) -> ModelEndpoints:
        """Where the stack's deployments are, as its runners reach them (Ray Serve through handles)."""
        return ModelEndpoints(
            ray_serve_url=self.ray_serve_url or ModelEndpoints().ray_serve_url,
            ray_address=self.env.get("ORATE_ENDPOINTS__RAY_ADDRESS", ""),
            ray_auth_token=self.env.get("ORATE_ENDPOINTS__RAY_AUTH_TOKEN", ""),
            triton_grpc_url=self.triton_grpc_url or ModelEndpoints().triton_grpc_url,
        )


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    alive: bool
    healthy: bool
    url: str
    restarts: int
    skipped_because: str | None = None


@dataclass(frozen=True)
class BrokerFill:
    """What the embedded broker holds: records in the retention window, the fullest partition, and the
    size of its data directory (noida-db rewrites its data file about once a second)."""

    records: int
    topic: str
    partition: int
    partition_records: int
    data_bytes: int

    def describe(self) -> str:
        return (
            f"broker: {self.records} records held, fullest partition {self.topic}/{self.partition}"
            f" ({self.partition_records}); data {self.data_bytes / 1e6:.1f} MB"
        )


@dataclass(frozen=True)
class StackStatus:
    run_dir: Path
    supervisor_pid: int | None
    state: str
    error: str | None
    components: list[ComponentStatus]
    broker_fill: BrokerFill | None = None
    # Sockets beyond 127.0.0.1/::1 that a stack started with listen_all had at start-up.
    beyond_loopback: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The supervisor runs, reported the stack ready, and every started component is up."""
        started = [c for c in self.components if c.skipped_because is None]
        return (
            self.supervisor_pid is not None
            and self.state == "ready"
            and all(c.alive and c.healthy for c in started)
        )

    def table(self) -> str:
        rows = [("component", "pid", "alive", "healthy", "url", "restarts")]
        running = self.supervisor_pid is not None
        rows.append(("supervisor", str(self.supervisor_pid or "-"), _yes(running), self.state, "", ""))
        for c in self.components:
            if c.skipped_because is not None:
                rows.append((c.name, "-", "-", "-", f"skipped: {c.skipped_because}", "-"))
            else:
                pid = str(c.pid or "-")
                rows.append((c.name, pid, _yes(c.alive), _yes(c.healthy), c.url, str(c.restarts)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        if self.broker_fill is not None:
            lines.append(self.broker_fill.describe())
        lines += [f"warning: listening beyond loopback (listen_all): {at}" for at in self.beyond_loopback]
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)


def _broker_fill(urls: StackUrls) -> BrokerFill | None:
    try:
        offsets = watermarks(urls.kafka_settings(), timeout_s=2.0)
    except BusError:
        return None  # a status line is not worth failing `orate status` for
    if not offsets:
        return None
    held = {tp: max(high - low, 0) for tp, (low, high) in offsets.items()}
    (topic, partition), most = max(held.items(), key=lambda item: item[1])
    data = urls.run_dir / "kafka"
    size = sum(f.stat().st_size for f in data.iterdir() if f.is_file()) if data.is_dir() else 0
    return BrokerFill(sum(held.values()), topic, partition, most, size)


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _is_supervisor(pid: int) -> bool:
    # Guards against a stale pid file whose pid now belongs to an unrelated process.
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return SUPERVISOR_MODULE.encode() in cmdline


class Stack:
    """The embedded stack in one run directory: `Stack(config).up()`, `.status()`, `.down()`."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config.resolved()
        self.run_dir = self.config.run_dir
        self._supervisor: ManagedProcess | None = None

    def supervisor_pid(self) -> int | None:
        pid = read_pid_file(self.run_dir / PID_FILE)
        return pid if pid is not None and _is_supervisor(pid) else None

    def urls(self) -> StackUrls:
        state = read_state(self.run_dir)
        if state is None or not state.get("urls"):
            raise StackError(f"no running stack in {self.run_dir}")
        return StackUrls.from_state(state)

    def up(self, timeout_s: float | None = None, detach: bool = True) -> StackUrls:
        """Start the supervisor and return once every component is healthy. detach=False ties the
        supervisor to this process (it gets SIGTERM if this process dies), as tests want."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        running = self.supervisor_pid()
        if running is not None:
            state = read_state(self.run_dir) or {}
            if state.get("status") == "ready":
                return StackUrls.from_state(state)
            raise StackError(
                f"a supervisor (pid {running}) already runs in {self.run_dir} with status"
                f" {state.get('status')!r}; run `orate down --run-dir {self.run_dir}` first"
            )
        (self.run_dir / CONFIG_FILE).write_text(self.config.model_dump_json(indent=2))
        (self.run_dir / STATE_FILE).unlink(missing_ok=True)
        self._supervisor = spawn(
            "supervisor",
            [sys.executable, "-m", SUPERVISOR_MODULE, "--run-dir", str(self.run_dir)],
            self.run_dir,
            die_with_parent=not detach,
            pid_path=self.run_dir / PID_FILE,
        )
        try:
            return self._wait_ready(timeout_s or self.config.startup_timeout_s + 30.0)
        except KeyboardInterrupt:
            self.down()
            raise

    def _wait_ready(self, timeout_s: float) -> StackUrls:
        assert self._supervisor is not None
        deadline = time.monotonic() + timeout_s
        while True:
            state = read_state(self.run_dir) or {}
            status = state.get("status")
            if status == "ready":
                return StackUrls.from_state(state)
            if status == "failed":
                # The supervisor stops what it started before it exits.
                self.down()
                raise StackError(state.get("error") or "the stack failed to start")
            if not self._supervisor.alive():
                raise StackError(
                    f"the supervisor exited (code {self._supervisor.returncode()}) before the stack was"
                    f" ready; last lines of {self._supervisor.log_path}:\n{self._supervisor.log_tail()}"
                )
            if time.monotonic() >= deadline:
                table = self.status().table()
                self.down()
                raise StackError(f"the stack was not ready after {timeout_s:g} s:\n{table}")
            time.sleep(0.1)

    def status(self) -> StackStatus:
        """The recorded state, with liveness and health checked now."""
        state = read_state(self.run_dir)
        supervisor = self.supervisor_pid()
        if state is None:
            return StackStatus(self.run_dir, supervisor, "absent", None, [])
        components = []
        for c in state.get("components", []):
            pid = c.get("pid")
            alive = pid is not None and pid_alive(pid, c.get("start_time"))
            healthy = alive and Probe.from_dict(c["probe"]).check(timeout_s=1.0)
            components.append(ComponentStatus(c["name"], pid, alive, healthy, c["url"], c["restarts"]))
        for name, reason in state.get("skipped", {}).items():
            components.append(ComponentStatus(name, None, False, False, "", 0, skipped_because=reason))
        status = state.get("status", "unknown") if supervisor is not None else "not running"
        kafka_up = any(c.name == "kafka" and c.healthy for c in components)
        fill = _broker_fill(StackUrls.from_state(state)) if kafka_up else None
        exposed = state.get("beyond_loopback", [])
        return StackStatus(self.run_dir, supervisor, status, state.get("error"), components, fill, exposed)

    def down(self, timeout_s: float = DOWN_TIMEOUT_S) -> None:
        """SIGTERM the supervisor (it stops its components in reverse order) and wait for it; then
        stop, by PID, any component a hard-killed supervisor left behind."""
        pid = self.supervisor_pid()
        if pid is not None:
            popen = self._supervisor.popen if self._supervisor and self._supervisor.pid == pid else None
            stop_process(pid, grace_s=timeout_s, popen=popen)
        elif self._supervisor is not None and self._supervisor.popen is not None:
            self._supervisor.popen.poll()
        state = read_state(self.run_dir) or {}
        for c in state.get("components", []):
            if c.get("pid") is not None and pid_alive(c["pid"], c.get("start_time")):
                stop_process(c["pid"], c.get("start_time"), grace_s=self.config.stop_grace_s)
        if pid is not None and read_pid_file(self.run_dir / PID_FILE) == pid:
            (self.run_dir / PID_FILE).unlink(missing_ok=True)


@contextmanager
def running_stack(config: StackConfig, timeout_s: float | None = None) -> Iterator[StackUrls]:
    """A stack for the duration of a with-block (or a pytest fixture), stopped by PID afterwards."""
    stack = Stack(config)
    urls = stack.up(timeout_s=timeout_s, detach=False)
    try:
        yield urls
    finally:
        ray_driver.disconnect()  # in case this process called the stack's Ray deployments
        stack.down()
