"""A deployments file on a local Ray Serve host or tritonserver (free ports, stopped by PID), for tests and
benchmarks."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.serving import ray_driver
from shared.settings import ModelEndpoints
from shared.stack.processes import Probe, spawn, wait_healthy
from shared.testing import free_port


@dataclass(frozen=True)
class LocalRayServe:
    url: str  # Serve's HTTP proxy
    endpoints: ModelEndpoints  # for model_client: handles, as the runners call the deployments


def ray_host_command(deployments_file: Path) -> tuple[list[str], dict[str, str], LocalRayServe]:
    """The argv and environment of a Ray host serving deployments_file on free ports, and where it serves."""
    serve_port, gcs_port = free_port(), free_port()
    argv = [sys.executable, "-m", "shared.serving.ray_host", "--deployments", str(deployments_file)]
    argv += ["--serve-port", str(serve_port), "--gcs-port", str(gcs_port)]
    argv += ["--metrics-port", str(free_port()), "--dashboard-agent-ports"]
    argv += [str(free_port()) for _ in range(3)]
    token = ray_driver.cluster_token()
    url = f"http://127.0.0.1:{serve_port}"
    endpoints = ModelEndpoints(ray_serve_url=url, ray_address=f"127.0.0.1:{gcs_port}", ray_auth_token=token)
    return argv, {**os.environ, "RAY_AUTH_TOKEN": token}, LocalRayServe(url, endpoints)


@contextmanager
def local_ray_serve(
    deployments_file: Path, run_dir: Path, cwd: Path | None = None
) -> Iterator[LocalRayServe]:
    """Yields once every application is deployed; this process's driver (if it joined) leaves first."""
    argv, env, ray = ray_host_command(deployments_file)
    process = spawn("ray-host", argv, run_dir, env=env, cwd=cwd)
    try:
        # READY is printed once the applications are deployed, which the HTTP health check does not wait for.
        wait_healthy(process, lambda: "READY" in process.log_path.read_text(), timeout_s=180)
        yield ray
    finally:
        ray_driver.disconnect()
        # The Ray host stops its node in order on SIGTERM; signalling the group too would race it.
        process.stop(grace_s=60, term_group=False)


@dataclass(frozen=True)
class LocalTriton:
    grpc_address: str
    metrics_url: str
    pid: int  # the tritonserver (its Python backend stubs are in its session)


@contextmanager
def local_triton(deployments_file: Path, run_dir: Path, timeout_s: float = 120.0) -> Iterator[LocalTriton]:
    """Yields once the server is ready (within timeout_s: large models take a while to load)."""
    from shared.serving.triton import build_model_repository, triton_command

    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    repo = build_model_repository(deployments_file, run_dir)
    argv, env = triton_command(repo, run_dir, http_port, grpc_port, metrics_port)
    process = spawn("tritonserver", argv, run_dir, env={**os.environ, **env})
    try:
        ready = Probe("http", "127.0.0.1", http_port, "/v2/health/ready").check
        wait_healthy(process, ready, timeout_s=timeout_s)
        yield LocalTriton(f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{metrics_port}/metrics", process.pid)
    finally:
        process.stop(grace_s=30)


def triton_counts(metrics_url: str, model: str) -> tuple[float, float]:
    """(inferences, executions) of a model from Triton's metrics; NaN where a count is not reported."""
    text = httpx.get(metrics_url, timeout=5).text

    def value(metric: str) -> float:
        match = re.search(rf'^{metric}{{model="{model}",version="1"}} (\S+)$', text, re.MULTILINE)
        return float(match.group(1)) if match else float("nan")

    return value("nv_inference_count"), value("nv_inference_exec_count")
