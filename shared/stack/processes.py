"""Managed child processes: spawn with a log file and a pid file, probe health, stop by PID and group."""

from __future__ import annotations

import http.client
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

LOG_TAIL_LINES = 40


class StartupError(RuntimeError):
    """A process could not be started or did not become healthy; the message quotes its log tail."""


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    return raw.rsplit(")", 1)[1].split()


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, it identifies a process
    even after the pid is reused."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """Whether the process exists and is not a zombie (and, if start_time is given, is the same one)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time


def session_members(leader: int) -> list[int]:
    """Live (non-zombie) processes in the process group or the session that leader leads: what a
    managed process spawned, including children that moved to groups of their own (Ray's workers)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] not in ("Z", "X") and leader in (int(fields[2]), int(fields[3])):
            members.append(int(entry.name))
    return members


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file (at most the last 64 KiB are read)."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(log.tell() - 65536, 0))
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return f"(no log file at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def stop_leftovers(leader: int, grace_s: float = 10.0) -> None:
    """SIGTERM, by PID, what is left of the group and session of a managed process whose leader is
    gone, then SIGKILL after grace_s (a crashed Ray host leaves its node processes holding ports)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        members = session_members(leader)
        if not members:
            return
        for member in members:
            _kill(member, sig)
        if _wait_until(lambda: not session_members(leader), wait_s):
            return


def stop_process(
    pid: int,
    start_time: int | None = None,
    grace_s: float = 10.0,
    popen: subprocess.Popen[bytes] | None = None,
    term_group: bool = True,
) -> None:
    """Stop a process by PID: SIGTERM to its process group (to it alone if it leads no session, or
    with term_group=False, for a process that stops its own children in order), then, after grace_s,
    SIGKILL to it and everything left in its group and session. Does nothing if the pid is gone or
    (with start_time) names another process."""

    def gone() -> bool:
        if popen is not None:
            popen.poll()  # reap our own child, or it would linger as a zombie
        return not pid_alive(pid) and not (leads_session and session_members(pid))

    if popen is not None:
        popen.poll()
    if not pid_alive(pid, start_time):
        return
    try:
        # Managed processes lead their own session (and group); anything else is signalled alone.
        leads_session = os.getsid(pid) == pid
    except ProcessLookupError:
        return
    try:
        if leads_session and term_group:
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if _wait_until(gone, grace_s):
        return
    for member in session_members(pid) if leads_session else [pid]:
        _kill(member, signal.SIGKILL)
    _wait_until(gone, 5.0)


@dataclass(frozen=True)
class Probe:
    """A health check: a TCP connect, a Redis PING, or an HTTP GET that must answer 200."""

    kind: Literal["tcp", "redis", "http"]
    host: str
    port: int
    path: str = "/"

    def describe(self) -> str:
        if self.kind == "http":
            return f"GET http://{self.host}:{self.port}{self.path} == 200"
        if self.kind == "redis":
            return f"PING redis://{self.host}:{self.port}"
        return f"TCP connect {self.host}:{self.port}"

    def check(self, timeout_s: float = 1.0) -> bool:
        try:
            if self.kind == "http":
                # http.client rather than urllib: no proxy from the environment may intercept this.
                connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
                try:
                    connection.request("GET", self.path)
                    return connection.getresponse().status == 200
                finally:
                    connection.close()
            with socket.create_connection((self.host, self.port), timeout=timeout_s) as sock:
                if self.kind == "redis":
                    sock.sendall(b"PING\r\n")
                    return sock.recv(64).startswith(b"+PONG")
                return True
        except (OSError, http.client.HTTPException):
            return False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Probe:
        return cls(kind=data["kind"], host=data["host"], port=int(data["port"]), path=data.get("path", "/"))


@dataclass
class ManagedProcess:
    """A process this program started, in its own session, logging to log_path."""

    name: str
    pid: int
    start_time: int | None
    log_path: Path
    pid_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def alive(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            return False
        return pid_alive(self.pid, self.start_time)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, grace_s: float = 10.0, term_group: bool = True) -> None:
        stop_process(self.pid, self.start_time, grace_s, self.popen, term_group)
        if read_pid_file(self.pid_path) == self.pid:
            self.pid_path.unlink(missing_ok=True)


def spawn(
    name: str,
    argv: list[str],
    run_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
    pid_path: Path | None = None,
) -> ManagedProcess:
    """Start argv in its own session, appending stdout and stderr to <run_dir>/logs/<name>.log and
    writing its pid to pid_path (default <run_dir>/pids/<name>.pid). With die_with_parent the
    process gets SIGTERM if this process dies first (via setpriv --pdeathsig, where installed),
    so a crashed test run or supervisor leaves nothing behind."""
    log_path = run_dir / "logs" / f"{name}.log"
    pid_path = pid_path or run_dir / "pids" / f"{name}.pid"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    command = list(argv)
    setpriv = shutil.which("setpriv") if die_with_parent else None
    if setpriv:
        command = [setpriv, "--pdeathsig", "TERM", "--", *command]
    with log_path.open("ab") as log:
        started = datetime.now().isoformat(timespec="seconds")
        log.write(f"\n=== {started} start: {shlex.join(argv)}\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise StartupError(f"{name}: cannot run {argv[0]}: {exc}") from exc
    pid_path.write_text(f"{popen.pid}\n")
    return ManagedProcess(
        name=name,
        pid=popen.pid,
        start_time=process_start_time(popen.pid),
        log_path=log_path,
        pid_path=pid_path,
        popen=popen,
    )


def wait_healthy(
    process: ManagedProcess, check: Callable[[], bool], timeout_s: float, interval_s: float = 0.05
) -> None:
    """Return once check() passes; raise StartupError quoting the log tail if the process exits
    first or timeout_s passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not process.alive():
            raise StartupError(
                f"{process.name} exited (code {process.returncode()}) before it became healthy;"
                f" last lines of {process.log_path}:\n{process.log_tail()}"
            )
        if check():
            return
        if time.monotonic() >= deadline:
            raise StartupError(
                f"{process.name} not healthy after {timeout_s:g} s; last lines of {process.log_path}:\n"
                f"{process.log_tail()}"
            )
        time.sleep(interval_s)
