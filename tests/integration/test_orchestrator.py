"""The orchestrator on the real embedded stack (tansu, Redis, Ray Serve, Triton, API, engine, runners)
with the fixture deployments and pipelines: jobs through both backends, events, retries, the DLQ,
timeouts, cancellation, idempotency, gRPC, an engine killed mid-job, and tenants (events carry theirs, a
finished job frees its concurrency quota). Clients send a key of the test's tenant, so the tests hold
whether the stack's API runs with keys or in its open mode."""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import soundfile as sf
from orate.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc

from shared import events
from shared.bus import CONTENT_TYPE_HEADER, Consumer, Record, Topics
from shared.media import encode_wav
from shared.stack.config import StackConfig, free_stack_ports
from shared.stack.control import Stack, StackUrls, running_stack
from shared.store import JobStore, StageAttempt
from shared.tenants import Tenants

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PRODUCT_BACKEND_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "product_backend" / "consumer.py"
# More open event streams than the API's thread pool (40) and its former gRPC workers (32).
SSE_FOLLOWERS = 48
GRPC_FOLLOWERS = 40
TERMINAL = {"succeeded", "failed", "cancelled"}
TENANT = f"it-{uuid.uuid4().hex[:8]}"
# What a successful two-stage job emits, in order.
TWO_STAGE_EVENTS = [
    events.JOB_ACCEPTED,
    events.STAGE_STARTED,
    events.STAGE_COMPLETED,
    events.STAGE_STARTED,
    events.STAGE_COMPLETED,
    events.JOB_COMPLETED,
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackUrls]]:
    # Free ports, with the blocks after ray_gcs and runner_metrics (one port per runner) free as well.
    ports = free_stack_ports()
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("stack"),
        ports=ports,
        deployments_file=FIXTURES / "deployments.yaml",
        pipeline_dirs=[FIXTURES / "pipelines"],
        prometheus=False,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}",
        partitions=3,
    )
    with running_stack(config, timeout_s=300) as urls:
        yield Stack(config), urls


@pytest.fixture(scope="module")
def tenants(stack: tuple[Stack, StackUrls]) -> Iterator[Tenants]:
    _, urls = stack
    store = Tenants(urls.redis_settings())
    yield store
    store.close()


@pytest.fixture(scope="module")
def api_key(tenants: Tenants) -> str:
    return tenants.create_key(TENANT, "test_orchestrator")[1]


def grpc_auth(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture(scope="module")
def api(stack: tuple[Stack, StackUrls], api_key: str) -> Iterator[httpx.Client]:
    _, urls = stack
    assert urls.api_url is not None
    with httpx.Client(
        base_url=urls.api_url, timeout=30, headers={"Authorization": f"Bearer {api_key}"}
    ) as client:
        yield client


def sine_wav(seconds: float = 1.0, rate: int = 22050, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return encode_wav((amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


def submit(api: httpx.Client, pipeline: str, inputs: dict, **headers: str) -> dict:
    response = api.post("/v1/jobs", json={"pipeline": pipeline, "inputs": inputs}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def wait_finished(api: httpx.Client, job_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {job}")


def sse_types(api: httpx.Client, job_id: str) -> list[str]:
    """The event types of the job's SSE stream (history then live, up to the terminal event)."""
    types = []
    with api.stream("GET", f"/v1/jobs/{job_id}/events", timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                types.append(line.removeprefix("event: "))
    return types


def consume(urls: StackUrls, topic: str, job_id: str, count: int, timeout_s: float = 30) -> list[Record]:
    settings = urls.kafka_settings()
    consumer = Consumer(settings, f"test-{uuid.uuid4().hex[:8]}", [topic], "test")
    found: list[Record] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            found += [r for r in consumer.poll_batch(100, 0.2) if r.key == job_id]
    finally:
        consumer.close()
    return found


def test_two_stage_job_runs_on_ray_then_triton_and_serves_its_artifacts(api: httpx.Client) -> None:
    upload = sine_wav(seconds=1.5, rate=22050, amplitude=0.5)
    response = api.post(
        "/v1/jobs",
        data={"request": json.dumps({"pipeline": "fixture-two-stage", "inputs": {"target_rate": 16000}})},
        files={"audio": ("tone.wav", upload, "audio/wav")},
    )
    assert response.status_code == 202, response.text
    job = wait_finished(api, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    outputs = job["outputs"]
    assert outputs["sample_rate"] == 16000
    assert outputs["duration_s"] == pytest.approx(1.5, abs=0.01)
    assert outputs["rms_dbfs"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)
    assert outputs["peak_dbfs"] == pytest.approx(20 * np.log10(0.5), abs=0.2)
    artifact = api.get(outputs["resampled"]["artifact"]["url"])
    assert artifact.headers["content-type"] == "audio/wav"
    wave, rate = sf.read(io.BytesIO(artifact.content))
    assert rate == 16000 and len(wave) == 24000
    assert {name: stage["status"] for name, stage in job["stages"].items()} == {
        "resample": "succeeded",
        "loudness": "succeeded",
    }
    assert all(stage["duration_ms"] >= stage["model_latency_ms"] > 0 for stage in job["stages"].values())
    assert sse_types(api, job["job_id"]) == TWO_STAGE_EVENTS


def test_job_events_reach_kafka_as_cloudevents(api: httpx.Client, stack: tuple[Stack, StackUrls]) -> None:
    _, urls = stack
    job = wait_finished(api, submit(api, "fixture-noop", {"tag": "events"})["job_id"])
    assert job["status"] == "succeeded" and job["outputs"] == {"tag": "events"}
    records = consume(urls, Topics(urls.env["ORATE_KAFKA__TOPIC_PREFIX"]).events, job["job_id"], 6)
    assert [events.from_cloudevent(r.value)["type"] for r in records] == TWO_STAGE_EVENTS
    assert all(r.headers[CONTENT_TYPE_HEADER] == events.CLOUDEVENTS_CONTENT_TYPE for r in records)
    # The job's tenant, as the CloudEvents extension attribute and in the JobEvent.
    assert {
        (e["tenant"], e["data"]["tenant"]) for e in map(events.from_cloudevent, [r.value for r in records])
    } == {(TENANT, TENANT)}


def test_failing_stage_is_retried_then_dead_lettered(
    api: httpx.Client, stack: tuple[Stack, StackUrls]
) -> None:
    _, urls = stack
    job = wait_finished(api, submit(api, "fixture-failing", {"tag": "f"})["job_id"])
    assert job["status"] == "failed"
    assert job["stages"]["fail"]["attempt"] == 3
    assert "fixture failure" in job["error"]
    assert sse_types(api, job["job_id"]).count(events.STAGE_RETRYING) == 2
    (record,) = consume(urls, Topics(urls.env["ORATE_KAFKA__TOPIC_PREFIX"]).dlq, job["job_id"], 1)
    letter = jobs_pb2.DeadLetter.FromString(record.value)
    assert (letter.stage, letter.service, letter.attempts) == ("fail", "fixture-always-fails", 3)
    assert "fixture failure" in letter.reason


def test_stage_timeout_is_enforced_and_retried(api: httpx.Client) -> None:
    job = wait_finished(api, submit(api, "fixture-timeout", {"seconds": 3})["job_id"])
    assert job["status"] == "failed"
    assert job["stages"]["slow"]["attempt"] == 2
    assert "timed out" in job["error"]


def test_cancel_mid_job_stops_it_and_ignores_the_late_result(
    api: httpx.Client, stack: tuple[Stack, StackUrls]
) -> None:
    _, urls = stack
    job_id = submit(api, "fixture-sleepy", {"ray_seconds": 2, "triton_seconds": 0})["job_id"]
    deadline = time.monotonic() + 20
    while api.get(f"/v1/jobs/{job_id}").json()["stages"]["sleep_ray"]["status"] != "dispatched":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.post(f"/v1/jobs/{job_id}:cancel").status_code == 202
    assert wait_finished(api, job_id)["status"] == "cancelled"
    # The Ray stage finishes and reports back: its result is the job's third command (submit, cancel).
    commands = consume(urls, Topics(urls.env["ORATE_KAFKA__TOPIC_PREFIX"]).jobs, job_id, 3)
    kinds = [jobs_pb2.JobCommand.FromString(record.value).WhichOneof("command") for record in commands]
    assert sorted(kinds) == ["cancel", "stage_result", "submit"]
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled"
    assert {name: stage["status"] for name, stage in job["stages"].items()} == {
        "sleep_ray": "cancelled",
        "sleep_triton": "cancelled",
    }
    assert sse_types(api, job_id)[-1] == events.JOB_CANCELLED


def test_idempotency_key_and_validation_on_the_real_api(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    first = submit(api, "fixture-noop", {}, **{"Idempotency-Key": key})
    second = submit(api, "fixture-noop", {}, **{"Idempotency-Key": key})
    assert first["job_id"] == second["job_id"]
    bad = api.post(
        "/v1/jobs", json={"pipeline": "fixture-two-stage", "inputs": {"audio": {"base64": "AAAA"}}}
    )
    assert bad.status_code == 422 and "audio" in bad.json()["error"]["message"]
    assert api.get("/readyz").json()["ready"] is True


def test_grpc_submit_get_and_stream(stack: tuple[Stack, StackUrls], api_key: str) -> None:
    _, urls = stack
    assert urls.api_grpc is not None
    auth = grpc_auth(api_key)
    with grpc.insecure_channel(urls.api_grpc) as channel:
        client = jobs_pb2_grpc.JobServiceStub(channel)
        request = jobs_pb2.SubmitJobRequest(
            pipeline="fixture-noop", inputs={"tag": common_pb2.Value(text="g")}
        )
        job = client.SubmitJob(request, metadata=auth, timeout=30)
        followed = client.StreamJobEvents(
            jobs_pb2.GetJobRequest(job_id=job.job_id), metadata=auth, timeout=60
        )
        streamed = list(followed)
        assert streamed[-1].type == events.JOB_COMPLETED
        assert streamed[-1].outputs["tag"].text == "g"
        assert {event.tenant for event in streamed} == {TENANT}
        finished = client.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id), metadata=auth)
        assert finished.status == jobs_pb2.JOB_STATUS_SUCCEEDED
        listed = client.ListJobs(jobs_pb2.ListJobsRequest(limit=100), metadata=auth, timeout=30)
        assert job.job_id in [listed_job.job_id for listed_job in listed.jobs]
        with pytest.raises(grpc.RpcError) as error:
            client.SubmitJob(jobs_pb2.SubmitJobRequest(pipeline="nope"), metadata=auth, timeout=30)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        names = [
            p.name for p in client.ListPipelines(jobs_pb2.ListPipelinesRequest(), metadata=auth).pipelines
        ]
        assert "fixture-two-stage" in names


def test_open_event_streams_hold_no_worker(
    api: httpx.Client, stack: tuple[Stack, StackUrls], api_key: str
) -> None:
    """More followers of a silent job than the REST thread pool (40) and the old gRPC workers (32) hold:
    reads and submits still answer, and every stream gets the job's terminal event when it comes."""
    _, urls = stack
    assert urls.api_url is not None and urls.api_grpc is not None
    store = JobStore(urls.redis_settings())
    job_id = f"silent-{uuid.uuid4().hex[:8]}"
    # Running, with no stage dispatched: no timer of the engine's will move it (a queued one would be
    # submitted again after a while, as a submit the broker lost).
    silent = jobs_pb2.Job(
        job_id=job_id, pipeline="fixture-noop", status=jobs_pb2.JOB_STATUS_RUNNING, tenant=TENANT
    )
    store.put_job(silent)
    limits = httpx.Limits(max_connections=SSE_FOLLOWERS)
    with (
        httpx.Client(base_url=urls.api_url, timeout=60, limits=limits, headers=api.headers) as followers,
        grpc.insecure_channel(urls.api_grpc) as channel,
        contextlib.ExitStack() as streams,
    ):
        sse = [
            streams.enter_context(followers.stream("GET", f"/v1/jobs/{job_id}/events"))
            for _ in range(SSE_FOLLOWERS)
        ]
        assert {response.status_code for response in sse} == {200}
        client = jobs_pb2_grpc.JobServiceStub(channel)
        grpc_streams = [
            client.StreamJobEvents(
                jobs_pb2.GetJobRequest(job_id=job_id), metadata=grpc_auth(api_key), timeout=60
            )
            for _ in range(GRPC_FOLLOWERS)
        ]
        streams.callback(lambda: [call.cancel() for call in grpc_streams])
        # Every stream is open on the server: SSE answered 200 above, gRPC sends its headers at once.
        for call in grpc_streams:
            call.initial_metadata()

        assert api.get(f"/v1/jobs/{job_id}", timeout=10).json()["status"] == "running"
        assert (
            client.GetJob(
                jobs_pb2.GetJobRequest(job_id=job_id), metadata=grpc_auth(api_key), timeout=10
            ).job_id
            == job_id
        )
        noop = submit(api, "fixture-noop", {"tag": "busy"})
        assert wait_finished(api, noop["job_id"])["status"] == "succeeded"

        cancelled = jobs_pb2.JobEvent(job_id=job_id, type=events.JOB_CANCELLED, time_unix_ms=1)
        store.write([], [(job_id, events.to_cloudevent(cancelled))])
        for response in sse:
            types = [line for line in response.iter_lines() if line.startswith("event: ")]
            assert types == [f"event: {events.JOB_CANCELLED}"]
        for call in grpc_streams:
            assert [event.type for event in call] == [events.JOB_CANCELLED]
    store.close()


def test_engine_killed_mid_job_loses_nothing(api: httpx.Client, stack: tuple[Stack, StackUrls]) -> None:
    manager, _ = stack
    job_id = submit(api, "fixture-sleepy", {"ray_seconds": 1.5, "triton_seconds": 0.1})["job_id"]
    (engine,) = [c for c in manager.status().components if c.name == "engine"]
    assert engine.pid is not None
    os.kill(engine.pid, signal.SIGKILL)  # the supervisor restarts it; the result waits in orate.jobs
    job = wait_finished(api, job_id, timeout_s=90)
    assert job["status"] == "succeeded", job
    assert job["outputs"]["tag"] == "sleepy"


def product_backend_events(urls: StackUrls, job_id: str, idle_s: float = 5) -> list[dict]:
    """The job's events as the example product backend (kafka-python) sees them on the events topic,
    read until idle_s pass with no event at all (so a duplicate after the terminal one would show)."""
    spec = importlib.util.spec_from_file_location("product_backend_consumer", PRODUCT_BACKEND_EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    topic = Topics(urls.env["ORATE_KAFKA__TOPIC_PREFIX"]).events
    follower = example.JobEventFollower(urls.kafka_bootstrap, topic, f"backend-{uuid.uuid4().hex[:8]}")
    try:
        found = [event for event in follower.events(timeout_s=idle_s) if event["subject"] == job_id]
    finally:
        follower.close()
    return found


def test_product_backend_example_reads_the_job_events_in_order(
    api: httpx.Client, stack: tuple[Stack, StackUrls]
) -> None:
    _, urls = stack
    job = wait_finished(api, submit(api, "fixture-noop", {"tag": "backend"})["job_id"])
    seen = product_backend_events(urls, job["job_id"])
    assert [event["type"] for event in seen] == TWO_STAGE_EVENTS
    assert seen[-1]["data"]["outputs"]["tag"]["text"] == "backend"
    assert {event["tenant"] for event in seen} == {TENANT}


def test_runner_killed_mid_job_is_replaced_and_the_job_completes_once(
    api: httpx.Client, stack: tuple[Stack, StackUrls]
) -> None:
    manager, urls = stack
    job_id = submit(api, "fixture-sleepy", {"ray_seconds": 2, "triton_seconds": 0})["job_id"]
    # The runner has taken the work item: its pickup heartbeat is in Redis.
    store = JobStore(urls.redis_settings())
    attempt = StageAttempt(job_id, "sleep_ray", 1)
    deadline = time.monotonic() + 20
    while attempt not in store.deadline_facts([attempt])[1]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    store.close()
    (runner,) = [c for c in manager.status().components if c.name == "runner-fixture-sleep-ray"]
    assert runner.pid is not None
    os.kill(runner.pid, signal.SIGKILL)  # its offset is uncommitted: the replacement replays the item
    job = wait_finished(api, job_id, timeout_s=120)
    assert job["status"] == "succeeded", job
    (replaced,) = [c for c in manager.status().components if c.name == "runner-fixture-sleep-ray"]
    assert replaced.pid != runner.pid and replaced.restarts >= 1
    seen = [event["type"] for event in product_backend_events(urls, job_id)]
    assert seen == TWO_STAGE_EVENTS
    assert seen.count(events.JOB_COMPLETED) == 1


def test_a_finished_job_frees_its_tenants_concurrency_quota_at_once(
    stack: tuple[Stack, StackUrls], tenants: Tenants
) -> None:
    """The engine takes a finished job out of its tenant's active set in the write that finishes it: once
    the job reads as finished, the next submit of a tenant allowed one job at a time is accepted."""
    _, urls = stack
    tenant = f"one-at-a-time-{uuid.uuid4().hex[:8]}"
    tenants.set_limits(tenant, concurrent_jobs=1)
    key = tenants.create_key(tenant)[1]
    assert urls.api_url is not None
    with httpx.Client(base_url=urls.api_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as api:
        # A second of sleep: the next submit comes while it runs.
        first = submit(api, "fixture-sleepy", {"ray_seconds": 1, "triton_seconds": 0})
        refused = api.post("/v1/jobs", json={"pipeline": "fixture-noop", "inputs": {}})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
        assert wait_finished(api, first["job_id"])["status"] == "succeeded"
        second = submit(api, "fixture-noop", {"tag": "second"})
        assert wait_finished(api, second["job_id"])["status"] == "succeeded"


def test_direct_model_call_through_the_api(api: httpx.Client) -> None:
    wav = base64.b64encode(sine_wav(seconds=1.0, rate=16000, amplitude=0.5)).decode()
    answer = api.post("/v1/models/fixture-loudness:predict", json={"audio": {"data": wav}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["peak_dbfs"] == pytest.approx(20 * np.log10(0.5), abs=0.2)
    assert "fixture-loudness" in [model["service"] for model in api.get("/v1/models").json()]
    bad = api.post("/v1/models/fixture-loudness:predict", json={"audio": {"data": "AAAA"}})
    assert bad.status_code == 422 and "fixture-loudness" in bad.json()["error"]["message"]
    assert api.post("/v1/models/nope:predict", json={}).status_code == 404
    assert api.post("/v1/models/fixture-loudness:predict", json={"audio": {"bogus": 1}}).status_code == 422
    assert api.post("/v1/models/fixture-loudness:predict", content=b"{not json").status_code == 400


def test_direct_model_call_to_a_ray_deployment_goes_through_a_handle(api: httpx.Client) -> None:
    # The API joins the stack's Ray cluster on its first call to a Ray deployment.
    wav = base64.b64encode(sine_wav(seconds=0.5, rate=16000, amplitude=0.5)).decode()
    answer = api.post(
        "/v1/models/fixture-resampler:predict", json={"audio": {"data": wav}, "target_rate": 8000}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["sample_rate"] == 8000
    assert answer.json()["duration_s"] == pytest.approx(0.5)
    bad = api.post(
        "/v1/models/fixture-resampler:predict", json={"audio": {"data": "AAAA"}, "target_rate": 8000}
    )
    assert bad.status_code == 422 and "not decodable" in bad.json()["error"]["message"]
