"""Nothing the embedded stack starts listens beyond loopback: every listening socket of every process of
a running stack (tansu, Redis, Ray's node processes, Serve's controller, proxy and live replicas, Triton,
the API, the engine and the runners) is bound to 127.0.0.1 or ::1."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from shared.serving.deployments import load_deployments
from shared.stack import StackConfig, free_stack_ports, running_stack
from shared.stack.supervisor import read_state

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOOPBACK = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}


@dataclass(frozen=True)
class Listener:
    pid: int
    process: str  # name and the head of the command line
    proto: str
    ip: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.proto} {host}:{self.port} of {self.process} (pid {self.pid})"


def stack_processes(supervisor_pid: int) -> list[psutil.Process]:
    """The supervisor, its descendants, and every other process in the sessions of those.

    Descendants alone can miss some: Ray's workers leave the process groups they started in, and one
    whose parent (the raylet) has gone is re-parented to init or a subreaper, outside the tree. No process
    leaves its session without calling setsid(), which none of the stack's programs do: the supervisor
    starts each component in a session of its own, and every Ray process stays in the Ray host's (the
    supervisor stops leftovers the same way). Ray's session dir or reaper would find Ray's processes only.
    """
    root = psutil.Process(supervisor_pid)
    members = {process.pid: process for process in [root, *root.children(recursive=True)]}
    sessions = set()
    for pid in members:
        try:
            sessions.add(os.getsid(pid))
        except ProcessLookupError:
            pass
    assert os.getsid(0) not in sessions, "the stack shares this test's session"
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) in sessions:
                members.setdefault(process.pid, process)
        except ProcessLookupError:
            pass
    return list(members.values())


def listeners(processes: list[psutil.Process]) -> list[Listener]:
    """Listening TCP sockets and unconnected (receiving) UDP sockets of the processes."""
    found = []
    for process in processes:
        try:
            with process.oneshot():
                # Ray's workers pad their process titles with spaces.
                label = f"{process.name()} [{' '.join(process.cmdline()).strip()[:100]}]"
                connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue  # an idle Ray worker that exited since it was listed
        for conn in connections:
            udp = conn.type == socket.SOCK_DGRAM
            if (not conn.raddr) if udp else conn.status == psutil.CONN_LISTEN:
                proto = "udp" if udp else "tcp"
                found.append(Listener(process.pid, label, proto, conn.laddr.ip, conn.laddr.port))
    return found


def on_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    # gRPC servers bind 127.0.0.1 through an IPv6 socket, which shows it as ::ffff:127.0.0.1.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in LOOPBACK


def await_replicas(supervisor_pid: int, services: list[str], timeout_s: float = 60.0) -> list[Listener]:
    """The stack's listeners once a Serve replica of each service runs with its two gRPC servers (its
    core worker's and Serve's inter-deployment one, which replicas start once their predictor is built)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = listeners(stack_processes(supervisor_pid))
        tcp = [item for item in found if item.proto == "tcp"]
        per_replica = {
            service: [item for item in tcp if f"[ray::ServeReplica:{service}:" in item.process]
            for service in services
        }
        if all(len(servers) >= 2 for servers in per_replica.values()):
            return found
        assert time.monotonic() < deadline, f"replicas without both gRPC servers: {per_replica}"
        time.sleep(0.5)


def test_every_listener_of_the_stack_is_on_loopback(run_dir: Path) -> None:
    deployments = FIXTURES / "deployments.yaml"
    ray_services = [d.service for d in load_deployments(deployments).deployments if d.backend == "ray"]
    config = StackConfig(
        run_dir=run_dir,
        ports=free_stack_ports(),
        deployments_file=deployments,
        pipeline_dirs=[FIXTURES / "pipelines"],
    )
    with running_stack(config, timeout_s=300) as urls:
        # A call to a Ray deployment (by value, over the replica's inter-deployment gRPC server) and one
        # to Triton, through the API: the Ray call makes the API join the Ray cluster, whose listeners
        # in the API process exist only from then on.
        assert urls.api_url is not None
        with httpx.Client(base_url=urls.api_url, timeout=60) as api:
            for service in ("fixture-sleep-ray", "fixture-sleep-triton"):
                answer = api.post(f"/v1/models/{service}:predict", json={"seconds": 0, "tag": service})
                assert answer.status_code == 200 and answer.json() == {"tag": service}, answer.text
        state = read_state(run_dir)
        assert state is not None and state["status"] == "ready"
        found = await_replicas(state["supervisor"]["pid"], ray_services)

    # The search found every component: each port the stack configured is among the listeners.
    configured = {port for component in state["components"] for port in component["ports"].values()}
    assert configured - {item.port for item in found} == set()
    assert any("[ray::ServeController" in item.process for item in found)
    assert any(item.process.startswith("tritonserver ") for item in found)
    beyond = [str(item) for item in found if not on_loopback(item.ip)]
    assert beyond == [], "listening beyond loopback:\n" + "\n".join(beyond)
