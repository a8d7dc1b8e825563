"""Shared fixtures: a real broker (noida-db) and a real Redis per test session (on free loopback ports,
data in the session's temporary directory, stopped by PID), per-test Kafka settings with their own topic
prefix, and a run directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.serving import ray_driver
from shared.settings import KafkaSettings, RedisSettings
from shared.stack.components import BROKER_IDLE_FETCH_INTERVAL_MS, broker_argv, redis_argv
from shared.stack.config import HOST
from shared.stack.processes import Probe, spawn, wait_healthy
from shared.testing import free_port

# Before any test imports Ray: tests join the loopback Ray clusters they start (all with this process's
# token) as drivers.
os.environ.update(ray_driver.driver_environment(ray_driver.cluster_token(), loopback=True))


@contextmanager
def _served(name: str, argv: list[str], probe: Probe, run_dir: Path) -> Iterator[None]:
    process = spawn(name, argv, run_dir)
    try:
        wait_healthy(process, probe.check, timeout_s=20.0)
        yield
    finally:
        process.stop(grace_s=5.0)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a noida-db broker shared by the session."""
    port = free_port()
    folder = tmp_path_factory.mktemp("kafka")
    with _served("kafka", broker_argv(port, folder / "data"), Probe("tcp", HOST, port), folder):
        yield f"{HOST}:{port}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """redis:// URL of a Redis server (append-only file) shared by the session."""
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    with _served("redis", redis_argv(port, folder), Probe("redis", HOST, port), folder):
        yield f"redis://{HOST}:{port}/0"


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings for the session's broker with a topic prefix of this test's own, and the embedded
    stack's idle pausing (a group join takes ~0.5 s on noida-db with the default timeouts)."""
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=3,
        idle_fetch_interval_ms=BROKER_IDLE_FETCH_INTERVAL_MS,
    )


@pytest.fixture
def redis_settings(redis_url: str) -> RedisSettings:
    return RedisSettings(url=redis_url)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """An empty run directory (logs, pid files, artifacts) for this test."""
    path = tmp_path / "run"
    path.mkdir()
    return path
