"""The stack supervisor: a daemon that starts the embedded stack's processes in order, restarts any
that die (with backoff), records their state in <run-dir>/stack.json and stops them on SIGTERM."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.stack.components import ComponentSpec, StackPlan, plan_stack
from shared.stack.config import StackConfig
from shared.stack.processes import (
    ManagedProcess,
    StartupError,
    process_start_time,
    read_pid_file,
    session_members,
    spawn,
    stop_leftovers,
)

STATE_FILE = "stack.json"
CONFIG_FILE = "stack-config.json"
PID_FILE = "supervisor.pid"
SUPERVISOR_MODULE = "shared.stack.supervisor"

_TICK_S = 0.1
_PROBE_EVERY_S = 1.0
_PROBE_TIMEOUT_S = 0.5
# A component that stays healthy this long after a restart gets its backoff reset.
_STABLE_AFTER_S = 30.0
_LEFTOVER_GRACE_S = 3.0

log = logging.getLogger("orate.stack")

LOOPBACK_ADDRESSES = frozenset({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")})


def on_loopback(ip: str) -> bool:
    """Whether a socket bound to ip is reachable from this machine only."""
    address = ipaddress.ip_address(ip)
    # gRPC binds 127.0.0.1 through an IPv6 socket, which reports it as ::ffff:127.0.0.1.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in LOOPBACK_ADDRESSES


def listeners_beyond_loopback(leaders: list[int]) -> list[str]:
    """The sockets that processes in the groups and sessions of leaders listen on (TCP) or receive on
    (unconnected UDP) at an address other than 127.0.0.1 or ::1, as 'name (pid N) on tcp ip:port'."""
    # Imported here: psutil comes with the `stack` extra, and shared.stack.processes' users need none.
    import psutil

    found = []
    for pid in sorted({member for leader in leaders for member in session_members(leader)}):
        try:
            process = psutil.Process(pid)
            name = process.name()
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue  # exited since it was listed
        for conn in connections:
            udp = conn.type == socket.SOCK_DGRAM
            listening = not conn.raddr if udp else conn.status == psutil.CONN_LISTEN
            if listening and not on_loopback(conn.laddr.ip):
                proto = "udp" if udp else "tcp"
                host = f"[{conn.laddr.ip}]" if ":" in conn.laddr.ip else conn.laddr.ip
                found.append(f"{name} (pid {pid}) on {proto} {host}:{conn.laddr.port}")
    return found


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The supervisor's last recorded state, or None if there is none (or it is half written)."""
    try:
        return json.loads((run_dir / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # Readers poll this file: write a temp file and rename so they never see half of it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


class _Stopping(Exception):
    """SIGTERM arrived while the stack was starting."""


@dataclass
class _Component:
    spec: ComponentSpec
    process: ManagedProcess | None = None
    healthy: bool = False
    # The ready marker appeared in the log since the last start (always true without a marker).
    ready: bool = False
    restarts: int = 0
    crashes_in_a_row: int = 0
    restart_at: float | None = None
    healthy_since: float | None = None
    hook_done: bool = False
    exit_code: int | None = None
    log_scanned: int = 0

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()


class Supervisor:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self.status = "starting"
        self.error: str | None = None
        self.plan: StackPlan | None = None
        self.components: list[_Component] = []
        self._stop_requested = False
        self._written: dict[str, Any] | None = None
        self.beyond_loopback: list[str] = []

    def request_stop(self) -> None:
        self._stop_requested = True

    # --- state -------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        components = []
        for comp in self.components:
            process = comp.process
            components.append(
                {
                    "name": comp.spec.name,
                    "pid": process.pid if process else None,
                    "start_time": process.start_time if process else None,
                    "alive": comp.alive(),
                    "healthy": comp.healthy,
                    "restarts": comp.restarts,
                    "exit_code": comp.exit_code,
                    "url": comp.spec.url,
                    "ports": comp.spec.ports,
                    "probe": comp.spec.probe.to_dict(),
                    "log": str(self.run_dir / "logs" / f"{comp.spec.name}.log"),
                }
            )
        return {
            "status": self.status,
            "error": self.error,
            "supervisor": {"pid": os.getpid(), "start_time": process_start_time(os.getpid())},
            "run_dir": str(self.run_dir),
            "urls": self.plan.urls if self.plan else {},
            "env": self.plan.env if self.plan else {},
            "components": components,
            "skipped": self.plan.skipped if self.plan else {},
            "beyond_loopback": self.beyond_loopback,
        }

    def write_state(self) -> None:
        """Rewrite stack.json if anything in it changed."""
        state = self.state()
        if state != self._written:
            _write_json(self.run_dir / STATE_FILE, state)
            self._written = state

    # --- processes ---------------------------------------------------------------------------------

    def _launch(self, comp: _Component) -> None:
        log_path = self.run_dir / "logs" / f"{comp.spec.name}.log"
        comp.log_scanned = log_path.stat().st_size if log_path.exists() else 0
        comp.ready = comp.spec.ready_marker is None
        comp.healthy = False
        comp.healthy_since = None
        comp.hook_done = comp.spec.on_healthy is None
        comp.exit_code = None
        env = {**os.environ, **comp.spec.env}
        comp.process = spawn(comp.spec.name, comp.spec.argv, self.run_dir, env=env)
        log.info("started %s (pid %d): %s", comp.spec.name, comp.process.pid, " ".join(comp.spec.argv))

    def _saw_ready_marker(self, comp: _Component) -> bool:
        """Scan the log written since the last start for the ready marker, reading only new bytes."""
        assert comp.spec.ready_marker is not None and comp.process is not None
        with comp.process.log_path.open("rb") as log_file:
            # Step back over a marker that may have been cut in half by the previous read.
            start = max(comp.log_scanned - len(comp.spec.ready_marker), 0)
            log_file.seek(start)
            chunk = log_file.read()
        comp.log_scanned = start + len(chunk)
        return comp.spec.ready_marker.encode() in chunk

    def _probe(self, comp: _Component) -> bool:
        """Update comp.healthy; run the component's on_healthy hook once per start."""
        if not comp.ready:
            comp.ready = self._saw_ready_marker(comp)
        healthy = comp.ready and comp.spec.probe.check(_PROBE_TIMEOUT_S)
        if healthy and not comp.hook_done and comp.spec.on_healthy is not None:
            comp.spec.on_healthy()
            comp.hook_done = True
            log.info("%s: post-start step done", comp.spec.name)
        if healthy and not comp.healthy:
            comp.healthy_since = time.monotonic()
            log.info("%s is healthy (%s)", comp.spec.name, comp.spec.probe.describe())
        elif comp.healthy and not healthy:
            log.warning("%s is unhealthy (%s)", comp.spec.name, comp.spec.probe.describe())
        comp.healthy = healthy
        return healthy

    def _stop_component(self, comp: _Component) -> None:
        if comp.process is None:
            return
        log.info("stopping %s (pid %d)", comp.spec.name, comp.process.pid)
        comp.process.stop(comp.spec.stop_grace_s, comp.spec.term_group)
        # The leader may be gone already while processes it spawned still hold ports.
        stop_leftovers(comp.process.pid, comp.spec.stop_grace_s)
        comp.healthy = False

    # --- start-up ----------------------------------------------------------------------------------

    def _check_stop(self) -> None:
        if self._stop_requested:
            raise _Stopping

    def _await_healthy(self, comps: list[_Component], deadline: float) -> None:
        waiting = list(comps)
        while waiting:
            self._check_stop()
            for comp in list(waiting):
                assert comp.process is not None
                if not comp.process.alive():
                    comp.exit_code = comp.process.returncode()
                    raise StartupError(
                        f"{comp.spec.name} exited (code {comp.exit_code}) before it became healthy;"
                        f" last lines of {comp.process.log_path}:\n{comp.process.log_tail()}"
                    )
                try:
                    healthy = self._probe(comp)
                except Exception as exc:
                    raise StartupError(f"{comp.spec.name}: post-start step failed: {exc}") from exc
                if healthy:
                    waiting.remove(comp)
            if waiting and time.monotonic() >= deadline:
                comp = waiting[0]
                assert comp.process is not None
                marker = f", no {comp.spec.ready_marker!r} line yet" if not comp.ready else ""
                raise StartupError(
                    f"{comp.spec.name} not healthy after {self.config.startup_timeout_s:g} s"
                    f" ({comp.spec.probe.describe()}{marker}); last lines of {comp.process.log_path}:\n"
                    f"{comp.process.log_tail()}"
                )
            self.write_state()
            if waiting:
                time.sleep(_TICK_S)

    def start(self) -> None:
        """Start every component in order; gated ones must be healthy before the next one starts."""
        deadline = time.monotonic() + self.config.startup_timeout_s
        try:
            self.plan = plan_stack(self.config)
        except Exception as exc:  # a bad deployments file, a model repository that cannot be built
            raise StartupError(f"cannot plan the stack: {exc}") from exc
        self.components = [_Component(spec) for spec in self.plan.components]
        for name, reason in self.plan.skipped.items():
            log.info("not starting %s: %s", name, reason)
        self.write_state()
        for comp in self.components:
            self._check_stop()
            self._launch(comp)
            self.write_state()
            if comp.spec.gate:
                self._await_healthy([comp], deadline)
        self._await_healthy(self.components, deadline)
        self._check_listeners()

    def _check_listeners(self) -> None:
        """Refuse a stack that listens beyond loopback unless listen_all allows it. Checked once every
        component is healthy: Ray's READY line comes after the replicas have started their servers."""
        leaders = [comp.process.pid for comp in self.components if comp.process is not None]
        found = listeners_beyond_loopback(leaders)
        if not found:
            return
        listeners = "; ".join(found)
        if not self.config.listen_all:
            raise StartupError(
                f"listening beyond loopback, where other machines may connect: {listeners}. Bind these to"
                " 127.0.0.1, or accept it with `orate up --listen-all` (stack config: listen_all: true)"
            )
        self.beyond_loopback = found
        log.warning("listen_all is set; listening beyond loopback: %s", listeners)

    # --- watching ----------------------------------------------------------------------------------

    def _watch_once(self, probe: bool) -> None:
        now = time.monotonic()
        for comp in self.components:
            if comp.restart_at is None and not comp.alive():
                assert comp.process is not None
                comp.exit_code = comp.process.returncode()
                comp.healthy = False
                comp.restarts += 1
                comp.crashes_in_a_row += 1
                delay = min(
                    self.config.restart_backoff_s * 2 ** (comp.crashes_in_a_row - 1),
                    self.config.restart_backoff_max_s,
                )
                log.warning(
                    "%s (pid %d) exited with code %s; restart #%d in %.1f s; last lines of its log:\n%s",
                    comp.spec.name,
                    comp.process.pid,
                    comp.exit_code,
                    comp.restarts,
                    delay,
                    comp.process.log_tail(10),
                )
                # Orphans of the dead leader may hold its ports; they get a short grace, not a full one.
                stop_leftovers(comp.process.pid, min(comp.spec.stop_grace_s, _LEFTOVER_GRACE_S))
                comp.restart_at = time.monotonic() + delay
            elif comp.restart_at is not None and now >= comp.restart_at:
                comp.restart_at = None
                try:
                    self._launch(comp)
                except StartupError as exc:
                    log.error("%s", exc)
            elif probe and comp.restart_at is None:
                try:
                    self._probe(comp)
                except Exception as exc:  # the hook is retried on the next probe
                    log.error("%s: post-start step failed: %s", comp.spec.name, exc)
                if comp.healthy_since is not None and now - comp.healthy_since > _STABLE_AFTER_S:
                    comp.crashes_in_a_row = 0

    def watch(self) -> None:
        next_probe = 0.0
        while not self._stop_requested:
            probe = time.monotonic() >= next_probe
            if probe:
                next_probe = time.monotonic() + _PROBE_EVERY_S
            self._watch_once(probe)
            self.write_state()
            time.sleep(_TICK_S)

    # --- lifecycle ---------------------------------------------------------------------------------

    def stop_all(self) -> None:
        for comp in reversed(self.components):
            self._stop_component(comp)
            self.write_state()

    def run(self) -> int:
        """Start, watch until SIGTERM, stop. 0 after a clean stop, 1 if the stack failed to start."""
        pid_path = self.run_dir / PID_FILE
        pid_path.write_text(f"{os.getpid()}\n")
        rc = 0
        try:
            self.start()
            self.status = "ready"
            self.write_state()
            log.info("stack ready: %s", self.plan.urls if self.plan else {})
            self.watch()
        except _Stopping:
            log.info("stop requested during start-up")
        except StartupError as exc:
            self.status, self.error, rc = "failed", str(exc), 1
            log.error("stack failed to start: %s", exc)
        except Exception as exc:
            self.status, self.error, rc = "failed", f"supervisor error: {exc!r}", 1
            log.exception("supervisor error")
        finally:
            if self.status != "failed":
                self.status = "stopping"
            self.write_state()
            self.stop_all()
            if self.status != "failed":
                self.status = "stopped"
            self.write_state()
            if read_pid_file(pid_path) == os.getpid():
                pid_path.unlink(missing_ok=True)
            log.info("supervisor exits (%s)", self.status)
        return rc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True, help=f"holds {CONFIG_FILE} from `orate up`")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = args.run_dir.resolve()
    config = StackConfig.model_validate_json((run_dir / CONFIG_FILE).read_text())
    supervisor = Supervisor(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: supervisor.request_stop())
    sys.exit(supervisor.run())


if __name__ == "__main__":
    main()
