"""The embedded stack through the `orate` command and the Python API: up, status, restart of a
killed component, down with every process gone, and a start-up failure that quotes the log."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient

from shared.bus import Producer, watermarks
from shared.serving.deployments import load_deployments
from shared.settings import KafkaSettings
from shared.stack import Stack, StackConfig, StackError, free_stack_ports, running_stack
from shared.stack.components import plan_stack
from shared.stack.config import HOST, RAY_PORT_BLOCK
from shared.stack.processes import Probe, pid_alive, spawn

pytestmark = pytest.mark.integration

ORATE = Path(sys.executable).parent / "orate"
PLATFORM_TOPICS = ("orate.jobs", "orate.events", "orate.dlq")


def _ports() -> dict[str, int]:
    return free_stack_ports().model_dump()


def _config(tmp_path: Path, ports: dict[str, int]) -> dict[str, Any]:
    """Broker and Redis only: no deployments, no orchestrator processes, no Prometheus."""
    deployments = tmp_path / "deployments.yaml"
    deployments.write_text("deployments: []\n")
    return {
        "ports": ports,
        "deployments_file": str(deployments),
        "pipeline_dirs": [],
        "orchestrator": False,
        "prometheus": False,
        "partitions": 2,
        "startup_timeout_s": 30,
    }


def _config_file(tmp_path: Path, ports: dict[str, int]) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, ports)))
    return path


def _await_restart(run_dir: Path, name: str, timeout_s: float = 15.0) -> dict[str, Any]:
    """The component's state once the supervisor has restarted it and found it healthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        component = _component(_state(run_dir), name)
        if component["restarts"] == 1 and component["healthy"]:
            return component
        assert time.monotonic() < deadline, f"{name} was not restarted: {component}"
        time.sleep(0.1)


def _partitions(bootstrap: str) -> dict[str, int]:
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).topics
    return {name: len(topic.partitions) for name, topic in topics.items()}


def _stored_end_offsets(data_dir: Path, topic: str) -> int | None:
    """The end offsets of topic's partitions, summed, in noida-db's data file (None if not readable)."""
    try:
        stored = json.loads((data_dir / "kafka.json").read_text())
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return None
    topics = dict(stored["topics"])
    if topic not in topics:
        return None
    return sum(partition["high_watermark"] for _, partition in topics[topic]["partitions"])


def _orate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ORATE), *args], capture_output=True, text=True, timeout=120)


def _state(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "stack.json").read_text())


def _component(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in state["components"] if c["name"] == name)


def test_orate_up_status_restart_down(tmp_path: Path, run_dir: Path) -> None:
    ports = _ports()
    config = _config_file(tmp_path, ports)
    common = ["--run-dir", str(run_dir), "--config", str(config)]
    try:
        up = _orate("up", *common)
        assert up.returncode == 0, up.stderr
        status = _orate("status", *common)
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
        assert rows["kafka"][2:4] == ["yes", "yes"] and rows["redis"][2:4] == ["yes", "yes"]
        assert "skipped:" in rows["prometheus"] and "skipped:" in rows["orchestrator"]
        assert "broker: 0 records held, fullest partition orate." in status.stdout

        state = _state(run_dir)
        supervisor_pid = int((run_dir / "supervisor.pid").read_text())
        assert state["status"] == "ready" and state["supervisor"]["pid"] == supervisor_pid
        assert [c["name"] for c in state["components"]] == ["kafka", "redis"]
        assert state["urls"] == {"kafka": f"{HOST}:{ports['kafka']}", "redis": f"redis://{HOST}:{ports['redis']}/0"}
        assert (run_dir / "logs" / "kafka.log").stat().st_size > 0
        # The platform topics exist with the configured partition count.
        partitions = _partitions(state["urls"]["kafka"])
        assert {name: partitions.get(name) for name in PLATFORM_TOPICS} == dict.fromkeys(PLATFORM_TOPICS, 2)
        # Status reports the records the broker holds, the fullest partition and the data size.
        producer = Producer(KafkaSettings(bootstrap_servers=state["urls"]["kafka"]), "test-fill")
        for _ in range(3):
            producer.send("orate.jobs", "job-1", b"x")
            producer.flush()
        producer.close()
        fill = json.loads(_orate("status", "--json", *common).stdout)["broker_fill"]
        assert fill["records"] == 3 and fill["partition_records"] == 3 and fill["topic"] == "orate.jobs"
        assert fill["data_bytes"] > 0 and (run_dir / "kafka").is_dir() and (run_dir / "redis").is_dir()

        old_redis = _component(state, "redis")
        os.kill(old_redis["pid"], signal.SIGKILL)
        redis_now = _await_restart(run_dir, "redis")
        assert redis_now["pid"] != old_redis["pid"] and pid_alive(redis_now["pid"])
        assert Probe("redis", HOST, ports["redis"]).check()
        assert "restart #1" in (run_dir / "logs" / "supervisor.log").read_text()

        down = _orate("down", *common)
        assert down.returncode == 0, down.stderr
        pids = [supervisor_pid, old_redis["pid"], redis_now["pid"], _component(state, "kafka")["pid"]]
        assert [pid for pid in pids if pid_alive(pid)] == []
        assert not (run_dir / "supervisor.pid").exists()
        assert _orate("status", *common).returncode != 0
    finally:
        _orate("down", *common)


def test_failed_start_quotes_the_log_and_stops_what_started(tmp_path: Path, run_dir: Path) -> None:
    ports = _ports()
    config = StackConfig.model_validate({**_config(tmp_path, ports), "run_dir": run_dir})
    with socket.create_server((HOST, ports["redis"])):  # Redis cannot bind its port
        with pytest.raises(StackError, match="(?s)redis exited.*Address already in use"):
            Stack(config).up(detach=False)
    state = _state(run_dir)
    assert state["status"] == "failed"
    kafka = _component(state, "kafka")
    assert not pid_alive(kafka["pid"], kafka["start_time"])
    assert not (run_dir / "supervisor.pid").exists()


def test_a_killed_broker_restarts_with_its_topics_and_records(tmp_path: Path, run_dir: Path) -> None:
    ports = _ports()
    overrides = {"run_dir": run_dir, "restart_backoff_s": 0.1}
    config = StackConfig.model_validate({**_config(tmp_path, ports), **overrides})
    with running_stack(config) as urls:
        assert urls.kafka_bootstrap == f"{HOST}:{ports['kafka']}"
        assert urls.redis_url == f"redis://{HOST}:{ports['redis']}/0"
        assert urls.api_url is None and urls.ray_serve_url is None and urls.triton_grpc_url is None
        assert urls.env["ORATE_KAFKA__BOOTSTRAP_SERVERS"] == urls.kafka_bootstrap
        assert Stack(config).status().ok
        producer = Producer(urls.kafka_settings(), "test-restart")
        producer.send("orate.jobs", "job-1", b"x")
        producer.flush()
        producer.close()
        # Once noida-db has written the record out (about once a second); a SIGKILL loses what came after.
        deadline = time.monotonic() + 10
        while _stored_end_offsets(run_dir / "kafka", "orate.jobs") != 1:
            assert time.monotonic() < deadline, "the broker never wrote its data out"
            time.sleep(0.1)
        old_kafka = _component(_state(run_dir), "kafka")
        os.kill(old_kafka["pid"], signal.SIGKILL)
        kafka = _await_restart(run_dir, "kafka")
        partitions = _partitions(urls.kafka_bootstrap)
        assert {name: partitions.get(name) for name in PLATFORM_TOPICS} == dict.fromkeys(PLATFORM_TOPICS, 2)
        assert sum(high for (topic, _), (_, high) in watermarks(urls.kafka_settings()).items()
                   if topic == "orate.jobs") == 1  # fmt: skip
        pids = [c["pid"] for c in _state(run_dir)["components"]] + [old_kafka["pid"], kafka["pid"]]
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not Stack(config).status().ok


def test_plan_for_ray_and_triton_deployments(tmp_path: Path) -> None:
    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    config = StackConfig(
        run_dir=tmp_path / "run", deployments_file=fixtures / "deployments.yaml", prometheus=False
    ).resolved()
    plan = plan_stack(config)
    services = [d.service for d in load_deployments(config.deployments_file).deployments]
    by_name = {c.name: c for c in plan.components}
    assert list(by_name) == ["kafka", "redis", "ray-serve", "triton", "api", "engine"] + [
        f"runner-{service}" for service in services
    ]
    ray = by_name["ray-serve"]
    assert ray.argv[1:3] == ["-m", "shared.serving.ray_host"] and ray.ready_marker == "READY"
    assert ray.argv[ray.argv.index("--serve-port") + 1] == "29400"
    assert ray.argv[ray.argv.index("--gcs-port") + 1] == "29380"
    assert all(29380 <= port <= 29389 for name, port in ray.ports.items() if name != "serve")
    triton = by_name["triton"]
    assert "--grpc-port=29501" in triton.argv and triton.probe.path == "/v2/health/ready"
    assert (config.run_dir / "triton" / "models" / "fixture-loudness" / "config.pbtxt").is_file()
    for i, service in enumerate(services):
        assert by_name[f"runner-{service}"].argv[-2:] == ["--service", service]
        assert by_name[f"runner-{service}"].env["ORATE_METRICS_PORT"] == str(29620 + i)
    assert by_name["engine"].env["ORATE_METRICS_PORT"] == "29610"
    assert by_name["api"].env["ORATE_REDIS__URL"] == "redis://127.0.0.1:29379/0"
    assert plan.env["ORATE_DEPLOYMENTS_FILE"] == str(config.deployments_file)
    assert set(plan.urls) == {"kafka", "redis", "ray_serve", "triton_http", "triton_grpc", "api", "api_grpc"}
    # Nothing may land in Ray's worker port range.
    ports = [port for c in plan.components for port in c.ports.values()]
    assert not [port for port in ports if 10002 <= port <= 19999]


def test_stop_reaches_children_that_left_the_process_group(run_dir: Path) -> None:
    # Like Ray's workers: a child in a process group of its own (same session) that ignores SIGTERM.
    child = (
        "import os, signal, time; os.setpgid(0, 0); signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print(os.getpid(), flush=True); time.sleep(60)"
    )
    parent = (
        "import subprocess, sys, time;"
        f" subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    )
    process = spawn("parent", [sys.executable, "-c", parent], run_dir)
    deadline = time.monotonic() + 10.0
    while not (printed := re.findall(r"^(\d+)$", process.log_path.read_text(), re.MULTILINE)):
        assert time.monotonic() < deadline, process.log_tail()
        time.sleep(0.05)
    child_pid = int(printed[0])
    try:
        assert os.getpgid(child_pid) == child_pid and os.getsid(child_pid) == process.pid
        process.stop(grace_s=0.5)
        assert not pid_alive(process.pid) and not pid_alive(child_pid)
        assert not process.pid_path.exists()
    finally:
        if pid_alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_free_stack_ports_keep_the_ray_and_runner_blocks_apart() -> None:
    ports = free_stack_ports(runners=8)
    used = [port for name, port in ports.model_dump().items() if name not in ("ray_gcs", "runner_metrics")]
    used += range(ports.ray_gcs, ports.ray_gcs + RAY_PORT_BLOCK)
    used += range(ports.runner_metrics, ports.runner_metrics + 8)
    assert len(set(used)) == len(used)
    assert all(20000 <= port < 32000 for port in used)
