"""A deployments file on a local Ray Serve host or tritonserver (free ports, stopped by PID), for tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.stack.processes import Probe, spawn, wait_healthy
from shared.testing import free_port


@contextmanager
def local_ray_serve(deployments_file: Path, run_dir: Path, cwd: Path | None = None) -> Iterator[str]:
    """Yields the Serve HTTP URL once every application is deployed."""
    serve_port = free_port()
    argv = [sys.executable, "-m", "shared.serving.ray_host", "--deployments", str(deployments_file)]
    argv += ["--serve-port", str(serve_port), "--gcs-port", str(free_port())]
    argv += ["--metrics-port", str(free_port()), "--dashboard-agent-ports"]
    argv += [str(free_port()) for _ in range(3)]
    process = spawn("ray-host", argv, run_dir, cwd=cwd)
    try:
        # READY is printed once the applications are deployed, which the HTTP health check does not wait for.
        wait_healthy(process, lambda: "READY" in process.log_path.read_text(), timeout_s=180)
        yield f"http://127.0.0.1:{serve_port}"
    finally:
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
