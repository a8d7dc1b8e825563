"""A deployments file on a local Ray Serve host or tritonserver (free ports, stopped by PID), for tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.serving import ray_driver
from shared.settings import ModelEndpoints
from shared.stack.processes import Probe, spawn, wait_healthy
from shared.testing import free_port


@dataclass(frozen=True)
class LocalRayServe:
    url: str  # Serve's HTTP proxy
    endpoints: ModelEndpoints  # for model_client: handles, as the runners call the deployments


@contextmanager
def local_ray_serve(
    deployments_file: Path, run_dir: Path, cwd: Path | None = None
) -> Iterator[LocalRayServe]:
    """Yields once every application is deployed; this process's driver (if it joined) leaves first."""
    serve_port, gcs_port = free_port(), free_port()
    argv = [sys.executable, "-m", "shared.serving.ray_host", "--deployments", str(deployments_file)]
    argv += ["--serve-port", str(serve_port), "--gcs-port", str(gcs_port)]
    argv += ["--metrics-port", str(free_port()), "--dashboard-agent-ports"]
    argv += [str(free_port()) for _ in range(3)]
    token = ray_driver.cluster_token()
    process = spawn("ray-host", argv, run_dir, env={**os.environ, "RAY_AUTH_TOKEN": token}, cwd=cwd)
    try:
        # READY is printed once the applications are deployed, which the HTTP health check does not wait for.
        wait_healthy(process, lambda: "READY" in process.log_path.read_text(), timeout_s=180)
        url = f"http://127.0.0.1:{serve_port}"
        endpoints = ModelEndpoints(
            ray_serve_url=url, ray_address=f"127.0.0.1:{gcs_port}", ray_auth_token=token
        )
        yield LocalRayServe(url, endpoints)
    finally:
        ray_driver.disconnect()
        # The Ray host stops its node in order on SIGTERM; signalling the group too would race it.
        process.stop(grace_s=60, term_group=False)


@contextmanager
def local_triton(deployments_file: Path, run_dir: Path) -> Iterator[str]:
    """Yields the gRPC address once the server is ready."""
    from shared.serving.triton import build_model_repository, triton_command

    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    repo = build_model_repository(deployments_file, run_dir)
    argv, env = triton_command(repo, run_dir, http_port, grpc_port, metrics_port)
    process = spawn("tritonserver", argv, run_dir, env={**os.environ, **env})
    try:
        wait_healthy(process, Probe("http", "127.0.0.1", http_port, "/v2/health/ready").check, timeout_s=120)
        yield f"127.0.0.1:{grpc_port}"
    finally:
        process.stop(grace_s=30)
