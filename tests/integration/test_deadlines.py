"""The engine's stage deadlines with real processes: a tansu broker, Redis, a Triton server with the fixture
Sleeper, and engine and runner processes that each test starts and stops by PID, on a test pipeline with
short deadlines. A stage nobody picks up fails on its schedule-to-start deadline, a long stage whose runner
heartbeats is left alone, a restarted runner completes the next job once, and the timers outlive an engine
killed with SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition
from orate.v1 import jobs_pb2
from orchestrator.runner import runner_group

from shared import events
from shared.bus import Consumer, Producer, Record, Topics, job_headers
from shared.serving.local import LocalTriton, local_triton
from shared.settings import KafkaSettings, RedisSettings
from shared.stack.components import BROKER_IDLE_FETCH_INTERVAL_MS
from shared.stack.config import HOST
from shared.stack.processes import ManagedProcess, Probe, spawn, wait_healthy
from shared.store import QUEUED_RESEND_MS, JobStore
from shared.tenants import DEV_TENANT
from shared.testing import free_port

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SERVICE = "fixture-sleep-triton"
PIPELINE = "deadline-sleep"
SCHEDULE_TO_START_S = 4.0
BACKOFF_S = 0.2
# Two attempts, each waiting out its schedule-to-start deadline, with the backoff in between.
UNPICKED_FAILS_AFTER_S = 2 * SCHEDULE_TO_START_S + BACKOFF_S
UNPICKED_REASON = f"no runner of {SERVICE} picked up stage sleep within {SCHEDULE_TO_START_S:g} s"
FAILED_JOB_EVENTS = [
    events.JOB_ACCEPTED,
    events.STAGE_STARTED,
    events.STAGE_RETRYING,
    events.STAGE_STARTED,
    events.STAGE_FAILED,
    events.JOB_FAILED,
]
TERMINAL = {jobs_pb2.JOB_STATUS_SUCCEEDED, jobs_pb2.JOB_STATUS_FAILED, jobs_pb2.JOB_STATUS_CANCELLED}


@pytest.fixture(scope="module")
def deployments_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture deployments file reduced to the Triton Sleeper (no Ray host to start)."""
    fixture = yaml.safe_load((FIXTURES / "deployments.yaml").read_text())
    path = tmp_path_factory.mktemp("deployments") / "deployments.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "python_path": [str(FIXTURES / entry) for entry in fixture["python_path"]],
                "proto_modules": fixture["proto_modules"],
                "deployments": [d for d in fixture["deployments"] if d["service"] == SERVICE],
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def triton(deployments_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    with local_triton(deployments_file, tmp_path_factory.mktemp("triton")) as server:
        yield server


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pipelines")
    stage = {
        "name": "sleep",
        "service": SERVICE,
        "request": {"seconds": "$inputs.seconds", "tag": "deadline"},
        "timeout_s": 20,
        "max_attempts": 2,
        "backoff_s": BACKOFF_S,
        "schedule_to_start_s": SCHEDULE_TO_START_S,
        # A beat every ~0.8 s: a stall of the runner's loop this long would fail the stage.
        "heartbeat_timeout_s": 2.5,
    }
    pipeline = {
        "name": PIPELINE,
        "inputs": {"seconds": {"type": "number", "default": 0}},
        "stages": [stage],
        "outputs": {"slept_s": "$stages.sleep.response.slept_s"},
    }
    (directory / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(pipeline))
    return directory


class Orchestrator:
    """Engine and runner processes on the test's topics, started and stopped by PID."""

    def __init__(
        self,
        kafka: KafkaSettings,
        redis_settings: RedisSettings,
        deployments_file: Path,
        pipeline_dir: Path,
        triton: LocalTriton,
        run_dir: Path,
    ) -> None:
        self.kafka = kafka
        self.topics = Topics(kafka.topic_prefix)
        self.run_dir = run_dir
        self.env = {
            **os.environ,
            "ORATE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "ORATE_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "ORATE_KAFKA__PARTITIONS": str(kafka.partitions),
            "ORATE_KAFKA__SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
            "ORATE_KAFKA__HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
            # Idle consumers pause their partitions on the embedded broker, as the stack's do.
            "ORATE_KAFKA__IDLE_FETCH_INTERVAL_MS": str(BROKER_IDLE_FETCH_INTERVAL_MS),
            # One member per group here: a restarted engine or runner rejoins at once, as in the stack.
            "ORATE_KAFKA__GROUP_INSTANCE_ID": "test-member",
            "ORATE_REDIS__URL": redis_settings.url,
            "ORATE_ARTIFACTS__BACKEND": "filesystem",
            "ORATE_ARTIFACTS__ROOT": str(run_dir / "artifacts"),
            "ORATE_ENDPOINTS__TRITON_GRPC_URL": triton.grpc_address,
            "ORATE_DEPLOYMENTS_FILE": str(deployments_file),
            "ORATE_PIPELINE_DIRS": str(pipeline_dir),
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[ManagedProcess] = []

    def start(self, name: str, *module_args: str) -> ManagedProcess:
        """Start an engine or runner and return once it serves /metrics (its clients are up)."""
        port = free_port()
        argv = [sys.executable, "-m", *module_args]
        process = spawn(name, argv, self.run_dir, env={**self.env, "ORATE_METRICS_PORT": str(port)})
        self.processes.append(process)
        wait_healthy(process, Probe("http", HOST, port, "/metrics").check, timeout_s=90)
        return process

    def start_engine(self) -> ManagedProcess:
        return self.start("engine", "orchestrator.engine")

    def start_runner(self) -> ManagedProcess:
        return self.start("runner", "orchestrator.runner", "--service", SERVICE)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop(grace_s=10)


@pytest.fixture
def orchestrator(
    kafka_settings: KafkaSettings,
    redis_settings: RedisSettings,
    deployments_file: Path,
    pipeline_dir: Path,
    triton: LocalTriton,
    run_dir: Path,
) -> Iterator[Orchestrator]:
    orchestrator = Orchestrator(
        kafka_settings, redis_settings, deployments_file, pipeline_dir, triton, run_dir
    )
    try:
        yield orchestrator
    finally:
        orchestrator.stop_all()


@pytest.fixture
def store(redis_settings: RedisSettings) -> Iterator[JobStore]:
    job_store = JobStore(redis_settings)
    yield job_store
    job_store.close()


def queued_job(seconds: float = 0, created_unix_ms: int | None = None) -> jobs_pb2.Job:
    job = jobs_pb2.Job(
        job_id=uuid.uuid4().hex,
        pipeline=PIPELINE,
        status=jobs_pb2.JOB_STATUS_QUEUED,
        created_unix_ms=created_unix_ms or int(time.time() * 1000),
        tenant=DEV_TENANT,
    )
    job.inputs["seconds"].number = seconds
    return job


def submit(orchestrator: Orchestrator, seconds: float = 0) -> str:
    """Send a SubmitJob straight to orate.jobs (as the API would, less the HTTP); the job id."""
    job = queued_job(seconds)
    job_id = job.job_id
    command = jobs_pb2.JobCommand(submit=jobs_pb2.SubmitJob(job=job))
    producer = Producer(orchestrator.kafka, "test-deadlines")
    try:
        producer.send_acknowledged(
            orchestrator.topics.jobs, job_id, command.SerializeToString(), job_headers(job_id)
        )
    finally:
        producer.close()
    return job_id


def wait_for(
    store: JobStore, job_id: str, done: Callable[[jobs_pb2.Job], bool], timeout_s: float
) -> jobs_pb2.Job:
    """Poll the job until done(job) holds, for at most timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = store.get_job(job_id)
        if job is not None and done(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not there after {timeout_s} s: {store.get_job(job_id)}")


def finished(store: JobStore, job_id: str, timeout_s: float) -> jobs_pb2.Job:
    return wait_for(store, job_id, lambda job: job.status in TERMINAL, timeout_s)


def wait_caught_up(orchestrator: Orchestrator, timeout_s: float = 60) -> None:
    """Return once the runners' group has committed every record of its work topic: a runner has joined
    and taken all there is (the broker is asked about the group, which this client does not join)."""
    topic = orchestrator.topics.work(SERVICE)
    client = KafkaConsumer(
        {"bootstrap.servers": orchestrator.kafka.bootstrap_servers, "group.id": runner_group(SERVICE)}
    )
    try:
        metadata = client.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = client.committed(partitions, timeout=10)
            ends = [client.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
            if all(end <= 0 or tp.offset >= end for tp, end in zip(committed, ends, strict=True)):
                return
            time.sleep(0.1)
    finally:
        client.close()
    raise AssertionError(f"{runner_group(SERVICE)} has not caught up with {topic} after {timeout_s} s")


def model_calls(triton: LocalTriton) -> int:
    """Requests the Triton Sleeper has answered."""
    text = httpx.get(triton.metrics_url, timeout=10).text
    found = re.search(rf'^nv_inference_request_success{{model="{SERVICE}"[^}}]*}} (\S+)$', text, re.MULTILINE)
    assert found is not None, text
    return int(float(found.group(1)))


def records(orchestrator: Orchestrator, topic: str, job_id: str, idle_s: float = 3.0) -> list[Record]:
    """The job's records on a topic, read from the start until idle_s pass with nothing new for the job
    (so a duplicate after the last one would show)."""
    consumer = Consumer(orchestrator.kafka, f"test-{uuid.uuid4().hex[:8]}", [topic], "test")
    found: list[Record] = []
    try:
        # Joining the group takes a few seconds on tansu: the idle time counts from the first record.
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            found += [r for r in consumer.poll_batch(100, 0.2) if r.key == job_id]
        quiet_until = time.monotonic() + idle_s
        while time.monotonic() < quiet_until:
            more = [r for r in consumer.poll_batch(100, 0.2) if r.key == job_id]
            if more:
                found += more
                quiet_until = time.monotonic() + idle_s
    finally:
        consumer.close()
    return found


def event_types_and_errors(orchestrator: Orchestrator, job_id: str) -> list[tuple[str, str]]:
    return [
        (data["type"], data.get("error", ""))
        for data in (
            events.from_cloudevent(r.value)["data"]
            for r in records(orchestrator, orchestrator.topics.events, job_id)
        )
    ]


def assert_failed_unpicked(orchestrator: Orchestrator, job: jobs_pb2.Job, within_s: float) -> None:
    """The job failed on the schedule-to-start deadline of both attempts, not earlier, at most within_s
    after that, with the reason in the job, its events and its dead letter."""
    assert job.status == jobs_pb2.JOB_STATUS_FAILED, job
    assert job.error == f"stage 'sleep' failed: {UNPICKED_REASON}"
    assert job.stages["sleep"].attempt == 2
    took_s = (job.finished_unix_ms - job.created_unix_ms) / 1000
    assert UNPICKED_FAILS_AFTER_S <= took_s <= UNPICKED_FAILS_AFTER_S + within_s
    seen = event_types_and_errors(orchestrator, job.job_id)
    assert [event_type for event_type, _ in seen] == FAILED_JOB_EVENTS
    assert [error for event_type, error in seen if event_type != events.JOB_FAILED and error] == [
        UNPICKED_REASON,
        UNPICKED_REASON,
    ]
    (record,) = records(orchestrator, orchestrator.topics.dlq, job.job_id, idle_s=1.0)
    letter = jobs_pb2.DeadLetter.FromString(record.value)
    assert (letter.stage, letter.service, letter.attempts, letter.reason) == (
        "sleep",
        SERVICE,
        2,
        UNPICKED_REASON,
    )


def test_a_stage_whose_runner_is_stopped_fails_on_time_and_a_restarted_runner_completes_the_next_job(
    orchestrator: Orchestrator, store: JobStore, triton: LocalTriton
) -> None:
    orchestrator.start_engine()
    runner = orchestrator.start_runner()
    # Done once the runner has joined its group (a retry covers a join slower than the deadline).
    assert finished(store, submit(orchestrator), timeout_s=60).status == jobs_pb2.JOB_STATUS_SUCCEEDED
    # Longer than the heartbeat timeout and the schedule-to-start deadline: the runner's beats keep it.
    long_job = finished(store, submit(orchestrator, seconds=6), timeout_s=60)
    assert long_job.status == jobs_pb2.JOB_STATUS_SUCCEEDED, long_job
    assert long_job.stages["sleep"].attempt == 1
    assert long_job.stages["sleep"].started_unix_ms > 0

    runner.stop(grace_s=10)
    unpicked = finished(store, submit(orchestrator), timeout_s=UNPICKED_FAILS_AFTER_S + 20)
    assert_failed_unpicked(orchestrator, unpicked, within_s=4)

    calls = model_calls(triton)
    orchestrator.start_runner()
    wait_caught_up(orchestrator)
    assert model_calls(triton) == calls  # the failed job's two work items were skipped
    next_job = finished(store, submit(orchestrator), timeout_s=30)
    assert next_job.status == jobs_pb2.JOB_STATUS_SUCCEEDED, next_job
    assert next_job.stages["sleep"].attempt == 1
    assert model_calls(triton) == calls + 1
    seen = [event_type for event_type, _ in event_types_and_errors(orchestrator, next_job.job_id)]
    assert seen.count(events.JOB_COMPLETED) == 1


def test_deadlines_survive_an_engine_killed_while_a_job_waits_for_a_missing_runner(
    orchestrator: Orchestrator, store: JobStore
) -> None:
    engine = orchestrator.start_engine()
    job_id = submit(orchestrator)
    dispatched = wait_for(
        store,
        job_id,
        lambda job: job.stages["sleep"].status == jobs_pb2.STAGE_STATUS_DISPATCHED,
        timeout_s=30,
    )
    # Killed before the first deadline passes: only the timer in Redis can bring the job to its end.
    assert time.time() * 1000 < dispatched.stages["sleep"].start_by_unix_ms
    os.kill(engine.pid, signal.SIGKILL)
    engine.stop(grace_s=5)  # reaps it
    orchestrator.start_engine()
    # Within: a new engine's start-up and its join to the group, after the dead one's session timed out.
    assert_failed_unpicked(orchestrator, finished(store, job_id, timeout_s=60), within_s=15)


def test_a_job_whose_submit_the_broker_lost_is_submitted_again_and_completes_once(
    orchestrator: Orchestrator, store: JobStore
) -> None:
    orchestrator.start_engine()
    orchestrator.start_runner()
    # Stored as the API stores it, as long ago as the resend waits: its SubmitJob never reached the broker.
    job = queued_job(created_unix_ms=int(time.time() * 1000) - QUEUED_RESEND_MS)
    store.put_job(job)
    done = finished(store, job.job_id, timeout_s=60)
    assert done.status == jobs_pb2.JOB_STATUS_SUCCEEDED, done
    first = records(orchestrator, orchestrator.topics.jobs, job.job_id, idle_s=1.0)[0]
    assert jobs_pb2.JobCommand.FromString(first.value).submit.job == job, (
        "the engine's copy of the stored job"
    )
    seen = [event_type for event_type, _ in event_types_and_errors(orchestrator, job.job_id)]
    assert seen == [events.JOB_ACCEPTED, events.STAGE_STARTED, events.STAGE_COMPLETED, events.JOB_COMPLETED]
