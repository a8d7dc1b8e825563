"""Shared fixtures: a real tansu broker and a real Redis per test session (on free loopback ports,
stopped by PID), per-test Kafka settings with their own topic prefix, and a run directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.serving import ray_driver
from shared.settings import KafkaSettings, RedisSettings
from shared.stack.components import redis_argv, tansu_argv
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
    """host:port of a tansu broker (memory storage) shared by the session."""
    port = free_port()
    with _served("kafka", tansu_argv(port), Probe("tcp", HOST, port), tmp_path_factory.mktemp("kafka")):
        yield f"{HOST}:{port}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """redis:// URL of a Redis server (no persistence) shared by the session."""
    port = free_port()
    with _served("redis", redis_argv(port), Probe("redis", HOST, port), tmp_path_factory.mktemp("redis")):
        yield f"redis://{HOST}:{port}/0"


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings for the session's broker with a topic prefix of this test's own, and the short
    session/heartbeat timeouts that make group joins take ~2 s on tansu instead of ~3-20 s."""
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=3,
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
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
