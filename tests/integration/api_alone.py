"""The API process alone, against the session's real Redis and broker, with the fixture pipelines: what
tests of the REST and gRPC surface need (no engine, runners or model servers to start)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.stack.config import HOST
from shared.stack.processes import Probe, spawn, wait_healthy
from shared.testing import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@dataclass(frozen=True)
class Api:
    http: str
    grpc: str


@contextmanager
def running_api(kafka_bootstrap: str, redis_url: str, run_dir: Path, auth: str) -> Iterator[Api]:
    """The API on free loopback ports until the block ends (stopped by PID); auth is `keys` or `open`."""
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "ORATE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ORATE_KAFKA__TOPIC_PREFIX": f"t{uuid.uuid4().hex[:12]}",
        "ORATE_KAFKA__PARTITIONS": "1",
        "ORATE_REDIS__URL": redis_url,
        "ORATE_ARTIFACTS__BACKEND": "filesystem",
        "ORATE_ARTIFACTS__ROOT": str(run_dir / "artifacts"),
        "ORATE_DEPLOYMENTS_FILE": str(FIXTURES / "deployments.yaml"),
        "ORATE_PIPELINE_DIRS": str(FIXTURES / "pipelines"),
        "ORATE_API__HOST": HOST,
        "ORATE_API__HTTP_PORT": str(http_port),
        "ORATE_API__GRPC_PORT": str(grpc_port),
        "ORATE_API__AUTH": auth,
        # No engine: a job's event stream (its history is empty) ends after this silence.
        "ORATE_API__EVENTS_IDLE_TIMEOUT_S": "0.1",
        "PYTHONUNBUFFERED": "1",
    }
    process = spawn("api", [sys.executable, "-m", "orchestrator.api"], run_dir, env=env)
    try:
        # Ready: Redis answers and the broker has the jobs topic.
        wait_healthy(process, Probe("http", HOST, http_port, "/readyz").check, timeout_s=60)
        yield Api(f"http://{HOST}:{http_port}", f"{HOST}:{grpc_port}")
    finally:
        process.stop(grace_s=10)
