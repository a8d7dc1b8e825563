"""The embedded stack keeps its data: a job accepted before `orate down` completes after `orate up`;
records and committed offsets survive a restart, so a group resumes with the right lag; retention bounds
what the broker holds; Redis's append-only file keeps every acknowledged write across a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from polling import consume

from shared.bus import BusError, Consumer, Producer, watermarks
from shared.stack import Stack, StackConfig, free_stack_ports
from shared.stack.config import HOST
from shared.stack.processes import Probe
from shared.tenants import Tenants

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TERMINAL = {"succeeded", "failed", "cancelled"}
# The one stage sleeps this long: long enough that `orate down` always finds the job unfinished.
STAGE_SLEEP_S = 8


def _broker_and_redis(tmp_path: Path, **overrides: Any) -> StackConfig:
    deployments = tmp_path / "deployments.yaml"
    deployments.write_text("deployments: []\n")
    values = {
        "run_dir": tmp_path / "run",
        "ports": free_stack_ports(),
        "deployments_file": deployments,
        "pipeline_dirs": [],
        "orchestrator": False,
        "prometheus": False,
        "partitions": 2,
        "restart_backoff_s": 0.1,
        "startup_timeout_s": 30,
    }
    return StackConfig.model_validate({**values, **overrides})


def _state(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "stack.json").read_text())


def _component(run_dir: Path, name: str) -> dict[str, Any]:
    return next(c for c in _state(run_dir)["components"] if c["name"] == name)


def _sleeper_stack(tmp_path: Path) -> StackConfig:
    """API, engine, a runner and Triton with the fixture Sleeper, and a one-stage pipeline on it."""
    deployments = yaml.safe_load((FIXTURES / "deployments.yaml").read_text())
    deployments["python_path"] = [str(FIXTURES), str(FIXTURES / "proto")]
    sleeper = [d for d in deployments["deployments"] if d["service"] == "fixture-sleep-triton"]
    deployments["deployments"] = sleeper
    (tmp_path / "deployments.yaml").write_text(yaml.safe_dump(deployments))
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    pipeline = {
        "name": "durable-sleep",
        "description": "one slow stage",
        "inputs": {"tag": {"type": "text", "default": "durable"}},
        "stages": [
            {
                "name": "sleep",
                "service": "fixture-sleep-triton",
                "request": {"seconds": STAGE_SLEEP_S, "tag": "$inputs.tag"},
                # Deadlines far beyond the wait after `orate up`, and no retry: the job can only finish
                # from the records and state kept across the restart, not by a fresh attempt.
                "timeout_s": 120,
                "heartbeat_timeout_s": 120,
                "schedule_to_start_s": 120,
                "max_attempts": 1,
            }
        ],
        "outputs": {"tag": "$stages.sleep.response.tag"},
    }
    (pipelines / "durable-sleep.yaml").write_text(yaml.safe_dump(pipeline))
    return StackConfig(
        run_dir=tmp_path / "run",
        ports=free_stack_ports(),
        deployments_file=tmp_path / "deployments.yaml",
        pipeline_dirs=[pipelines],
        prometheus=False,
        partitions=2,
        # Short: `orate down` then stops the runner in the middle of the stage.
        stop_grace_s=2.0,
        startup_timeout_s=180,
    )


def test_a_job_accepted_before_down_completes_after_up(tmp_path: Path) -> None:
    stack = Stack(_sleeper_stack(tmp_path))
    try:
        urls = stack.up(detach=False)
        tenants = Tenants(urls.redis_settings())
        key = tenants.create_key(f"it-{uuid.uuid4().hex[:8]}", "test_broker_durability")[1]
        tenants.close()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=urls.api_url, timeout=30, headers=headers) as api:
            response = api.post("/v1/jobs", json={"pipeline": "durable-sleep", "inputs": {"tag": "kept"}})
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]
            assert api.get(f"/v1/jobs/{job_id}").json()["status"] not in TERMINAL
        stack.down()
        assert not stack.status().ok

        urls = stack.up(detach=False)
        with httpx.Client(base_url=urls.api_url, timeout=30, headers=headers) as api:
            deadline = time.monotonic() + 60
            while (job := api.get(f"/v1/jobs/{job_id}").json())["status"] not in TERMINAL:
                assert time.monotonic() < deadline, job
                time.sleep(0.5)
        assert job["status"] == "succeeded" and job["outputs"] == {"tag": "kept"}, job
    finally:
        stack.down()


def test_records_and_committed_offsets_survive_down_and_up_with_the_right_lag(tmp_path: Path) -> None:
    stack = Stack(_broker_and_redis(tmp_path))
    try:
        kafka = stack.up(detach=False).kafka_settings()
        topic = "orate.jobs"
        producer = Producer(kafka, "test-durable")
        for i in range(30):
            producer.send(topic, f"job-{i}", f"v{i}".encode())
        producer.flush()
        producer.close()
        first = Consumer(kafka, "g-durable", [topic], "first")
        try:
            for record in consume(first, 10):  # ten processed (of 30): committed at close
                first.processed(record)
        finally:
            first.close()
        before = watermarks(kafka)
        stack.down()

        kafka = stack.up(detach=False).kafka_settings()
        assert watermarks(kafka) == before
        second = Consumer(kafka, "g-durable", [topic], "second")
        try:
            rest = consume(second, 20)
            rest += second.poll_batch(max_records=10, timeout_s=0.5)  # nothing beyond the 20
            lag = second.lag()
        finally:
            second.close()
        assert len(rest) == 20 and len({r.key for r in rest}) == 20
        # Nothing processed by the second member: lag is what the first one left, per partition.
        left = {(topic, p): 0 for p in range(2)}
        for record in rest:
            left[(record.topic, record.partition)] += 1
        assert lag == left
    finally:
        stack.down()


def _restarted(stack: Stack, run_dir: Path, sig: signal.Signals, timeout_s: float = 30.0) -> None:
    """Signal the broker and return once the supervisor has it healthy again."""
    old = _component(run_dir, "kafka")
    os.kill(old["pid"], sig)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = _component(run_dir, "kafka")
        if now["pid"] != old["pid"] and now["healthy"]:
            return
        time.sleep(0.1)
    raise AssertionError(f"the broker was not restarted within {timeout_s} s")


def test_a_producer_carries_on_after_the_broker_restarts_without_its_producer_state(tmp_path: Path) -> None:
    config = _broker_and_redis(tmp_path)
    stack = Stack(config)
    try:
        kafka = stack.up(detach=False).kafka_settings()
        producer = Producer(kafka, "test-carries-on")
        for i in range(20):  # sequence numbers on both partitions that the restarted broker forgets
            producer.send_acknowledged("orate.jobs", f"before-{i}", b"x")
        _restarted(stack, config.run_dir, signal.SIGKILL)
        delivered, failures = [], []
        deadline = time.monotonic() + 60
        while len(delivered) < 20 and time.monotonic() < deadline:
            key = f"after-{len(delivered)}"
            try:
                producer.send_acknowledged("orate.jobs", key, b"y")
                delivered.append(key)
            except BusError as exc:  # what the old client held, or sent while the broker was away
                failures.append(str(exc))
                time.sleep(0.2)
        producer.close()
        assert len(delivered) == 20, failures[-3:]
    finally:
        stack.down()


def test_retention_bounds_what_the_broker_holds_while_records_keep_coming(tmp_path: Path) -> None:
    stack = Stack(_broker_and_redis(tmp_path, broker_events_retention_s=1.0))
    try:
        kafka = stack.up(detach=False).kafka_settings()
        producer = Producer(kafka, "test-retention")
        held = []
        for i in range(300):  # ~6 s at 50/s: segments roll and go while the topic is written to
            producer.send("orate.events", f"job-{i}", b"x" * 500)
            producer.flush()
            if i % 50 == 49:
                held.append(sum(high - low for (topic, _), (low, high) in watermarks(kafka).items()
                                if topic == "orate.events"))  # fmt: skip
            time.sleep(0.02)
        producer.close()
        assert held[-1] < 200, held  # about two seconds' worth, not all 300
        deadline = time.monotonic() + 20
        while (fill := stack.status().broker_fill) is None or fill.records:
            assert time.monotonic() < deadline, fill
            time.sleep(0.2)
        # Dropped records leave their offsets behind: the end offsets still count them.
        assert sum(high for _, high in watermarks(kafka).values()) == 300
    finally:
        stack.down()


def test_redis_keeps_acknowledged_writes_across_a_sigkill(tmp_path: Path) -> None:
    config = _broker_and_redis(tmp_path)
    stack = Stack(config)
    try:
        urls = stack.up(detach=False)
        client = redis.Redis.from_url(urls.redis_url)
        for i in range(2000):  # each acknowledged before the next is sent
            client.set(f"durable:{i}", i)
        old = _component(config.run_dir, "redis")
        os.kill(old["pid"], signal.SIGKILL)  # right after the last reply
        deadline = time.monotonic() + 20
        while (now := _component(config.run_dir, "redis"))["pid"] == old["pid"] or not now["healthy"]:
            assert time.monotonic() < deadline, now
            time.sleep(0.05)
        assert Probe("redis", HOST, config.ports.redis).check()
        client = redis.Redis.from_url(urls.redis_url)
        values = client.mget([f"durable:{i}" for i in range(2000)])
        assert values == [str(i).encode() for i in range(2000)]
        assert (config.run_dir / "redis").is_dir()
    finally:
        stack.down()
