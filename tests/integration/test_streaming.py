"""Streaming on the real embedded stack (broker, Redis, Ray Serve, Triton, API, engine, runners) with the
streaming fixture (fixture_predictors.Chunker) on both backends: each chunk reaches a Kafka consumer, the
REST event stream (SSE) and the gRPC event stream as the model yields it, stored as an artifact. That a
chunk arrives before the model has finished is proved by the model's own timestamps: the first chunk is
received before the model yielded its last one."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from orate.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc

from shared import events
from shared.artifacts import artifact_store
from shared.bus import Consumer, Topics
from shared.serving.clients import ModelClient, RayServeClient, TritonClient
from shared.serving.predictor import InvalidRequest
from shared.settings import ArtifactSettings
from shared.stack.config import StackConfig, free_stack_ports
from shared.stack.control import Stack, StackUrls, running_stack
from shared.tenants import Tenants

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "proto"))
from orate_fixtures.v1 import fixtures_pb2 as fx  # noqa: E402

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TENANT = f"st-{uuid.uuid4().hex[:8]}"
BACKENDS = ["ray", "triton"]
CHUNKS = 5
# The model pauses this long between two chunks: the stream lasts (CHUNKS - 1) x PAUSE_S.
PAUSE_S = 1.0
PARTITIONS = 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackUrls]]:
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("stack"),
        ports=free_stack_ports(),
        deployments_file=FIXTURES / "streaming" / "deployments.yaml",
        pipeline_dirs=[FIXTURES / "streaming" / "pipelines"],
        prometheus=False,
        topic_prefix=f"s{uuid.uuid4().hex[:8]}",
        partitions=PARTITIONS,
    )
    with running_stack(config, timeout_s=300) as urls:
        yield Stack(config), urls


@pytest.fixture(scope="module")
def api_key(stack: tuple[Stack, StackUrls]) -> Iterator[str]:
    tenants = Tenants(stack[1].redis_settings())
    yield tenants.create_key(TENANT, "test_streaming")[1]
    tenants.close()


@pytest.fixture(scope="module")
def api(stack: tuple[Stack, StackUrls], api_key: str) -> Iterator[httpx.Client]:
    assert stack[1].api_url is not None
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=stack[1].api_url, timeout=30, headers=headers) as client:
        yield client


class Received:
    """Events of one job as a follower received them: (time.time() on arrival, CloudEvent)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.done = threading.Event()

    def add(self, envelope: dict[str, Any]) -> None:
        self.events.append((time.time(), envelope))
        if envelope["type"] in events.TERMINAL_TYPES:
            self.done.set()

    def of_type(self, event_type: str) -> list[tuple[float, dict[str, Any]]]:
        return [(at, event) for at, event in self.events if event["type"] == event_type]

    def types(self) -> list[str]:
        return [event["type"] for _, event in self.events]


def joined_consumer(urls: StackUrls, topic: str) -> Consumer:
    """A consumer in a group of its own, once it has every partition of the topic assigned and fetched: what
    it receives from then on, it receives as soon as the broker has it."""
    consumer = Consumer(urls.kafka_settings(), f"test-{uuid.uuid4().hex[:8]}", [topic], "test-streaming")
    deadline = time.monotonic() + 120
    while len(consumer.lag()) < PARTITIONS:
        assert time.monotonic() < deadline, f"the consumer of {topic} got no assignment"
        consumer.poll_batch(100, 0.05)  # events of earlier jobs only: the followed job is not submitted yet
    return consumer


def follow_kafka(consumer: Consumer, job_id: str, received: Received, stop: threading.Event) -> None:
    try:
        while not (stop.is_set() or received.done.is_set()):
            for record in consumer.poll_batch(100, 0.05):
                if record.key == job_id:
                    received.add(events.from_cloudevent(record.value))
    finally:
        consumer.close()


def follow_sse(api: httpx.Client, job_id: str, received: Received) -> None:
    with api.stream("GET", f"/v1/jobs/{job_id}/events", timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.add(json.loads(line.removeprefix("data: ")))


def run_followed(
    api: httpx.Client, urls: StackUrls, inputs: dict[str, Any], backend: str
) -> tuple[dict[str, Any], Received, Received]:
    """Submit with a Kafka consumer already reading orate.events and an SSE stream opened at once; the
    finished job and what each follower received."""
    kafka, sse, stop = Received(), Received(), threading.Event()
    consumer = joined_consumer(urls, Topics(urls.env["ORATE_KAFKA__TOPIC_PREFIX"]).events)
    response = api.post("/v1/jobs", json={"pipeline": f"fixture-chunks-{backend}", "inputs": inputs})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    followers = [
        threading.Thread(target=follow_kafka, args=(consumer, job_id, kafka, stop), daemon=True),
        threading.Thread(target=follow_sse, args=(api, job_id, sse), daemon=True),
    ]
    for follower in followers:
        follower.start()
    followers[1].join(timeout=60)
    followers[0].join(timeout=30)
    stop.set()
    followers[0].join()
    return api.get(f"/v1/jobs/{job_id}").json(), kafka, sse


def sequence_of(event: dict[str, Any]) -> int:
    return int(event["data"].get("sequence", 0))  # protobuf JSON leaves out a 0


def chunk_bytes(event: dict[str, Any], urls: StackUrls) -> bytes:
    """The bytes of a chunk event's `data` artifact, read from the stack's artifact store."""
    store = artifact_store(ArtifactSettings(root=Path(urls.env["ORATE_ARTIFACTS__ROOT"])))
    return store.get(event["data"]["outputs"]["data"]["artifact"]["uri"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunks_reach_kafka_and_sse_before_the_model_has_finished(
    api: httpx.Client, stack: tuple[Stack, StackUrls], backend: str
) -> None:
    _, urls = stack
    tag = f"first-{backend}"
    job, kafka, sse = run_followed(api, urls, {"chunks": CHUNKS, "pause_s": PAUSE_S, "tag": tag}, backend)
    assert job["status"] == "succeeded", job
    last_emitted_unix_s = job["outputs"]["last_emitted_unix_s"]
    for received in (kafka, sse):
        chunks = received.of_type(events.STAGE_CHUNK)
        assert [sequence_of(event) for _, event in chunks] == list(range(CHUNKS))
        first_at, first = chunks[0]
        # The model's own clock: it had not yet yielded its last chunk when the first one arrived here.
        assert first_at < last_emitted_unix_s
        assert first["data"]["outputs"]["response"]["json"]["emitted_unix_s"] <= first_at
        assert first["id"] == f"{job['job_id']}:{events.STAGE_CHUNK}:chunk:1:0"
        assert first["tenant"] == TENANT and first["data"]["pipeline"] == f"fixture-chunks-{backend}"
        # In order, between the stage's start... and its completion, on Kafka and on the event stream.
        types = received.types()
        assert types.index(events.STAGE_COMPLETED) > max(
            i for i, kind in enumerate(types) if kind == events.STAGE_CHUNK
        )
        assert types[-1] == events.JOB_COMPLETED
    for sequence, (_, event) in enumerate(kafka.of_type(events.STAGE_CHUNK)):
        assert chunk_bytes(event, urls) == f"chunk {sequence} of {tag}".encode()
        # The same bytes through the API, at the path the event names.
        url = f"/v1/jobs/{job['job_id']}/artifacts/chunk/chunks/1/{sequence}/data"
        assert api.get(url).content == f"chunk {sequence} of {tag}".encode()
    assert api.get(f"/v1/jobs/{job['job_id']}/artifacts/chunk/chunks/1/{CHUNKS}/data").status_code == 404
    whole = api.get(job["outputs"]["data"]["artifact"]["url"]).content
    assert whole == b"".join(f"chunk {i} of {tag}".encode() for i in range(CHUNKS))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failure_mid_stream_fails_the_stage_and_keeps_the_chunks_sent(
    api: httpx.Client, stack: tuple[Stack, StackUrls], backend: str
) -> None:
    _, urls = stack
    tag = f"broken-{backend}"
    inputs = {"chunks": CHUNKS, "pause_s": 0.05, "fail_after": 2, "tag": tag}
    job, kafka, sse = run_followed(api, urls, inputs, backend)
    assert job["status"] == "failed", job
    assert "fixture failure after 2 chunks" in job["stages"]["chunk"]["error"]
    for received in (kafka, sse):
        assert [sequence_of(event) for _, event in received.of_type(events.STAGE_CHUNK)] == [0, 1]
        assert received.types()[-2:] == [events.STAGE_FAILED, events.JOB_FAILED]
    assert [chunk_bytes(event, urls) for _, event in kafka.of_type(events.STAGE_CHUNK)] == [
        f"chunk {i} of {tag}".encode() for i in range(2)
    ]


def test_grpc_event_stream_carries_the_chunks_as_they_come(
    api: httpx.Client, stack: tuple[Stack, StackUrls], api_key: str
) -> None:
    _, urls = stack
    assert urls.api_grpc is not None
    inputs = {"chunks": common_pb2.Value(number=CHUNKS), "pause_s": common_pb2.Value(number=PAUSE_S)}
    received: list[tuple[float, jobs_pb2.JobEvent]] = []
    metadata = (("authorization", f"Bearer {api_key}"),)
    with grpc.insecure_channel(urls.api_grpc) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        request = jobs_pb2.SubmitJobRequest(pipeline="fixture-chunks-triton", inputs=inputs)
        job = stub.SubmitJob(request, metadata=metadata, timeout=30)
        for event in stub.StreamJobEvents(jobs_pb2.GetJobRequest(job_id=job.job_id), metadata=metadata):
            received.append((time.time(), event))
    chunks = [(at, event) for at, event in received if event.type == events.STAGE_CHUNK]
    assert [event.sequence for _, event in chunks] == list(range(CHUNKS))
    assert all(event.outputs["data"].artifact.uri for _, event in chunks)
    finished = api.get(f"/v1/jobs/{job.job_id}").json()
    assert finished["status"] == "succeeded"
    assert chunks[0][0] < finished["outputs"]["last_emitted_unix_s"]
    assert [event.type for _, event in received][-2:] == [events.STAGE_COMPLETED, events.JOB_COMPLETED]


@pytest.fixture(scope="module")
def clients(stack: tuple[Stack, StackUrls]) -> Iterator[list[ModelClient]]:
    """The stack's streaming deployments through Serve's HTTP proxy and Triton. Ray Serve handles stream
    in the stack's runners (the pipeline tests above): a test process joins one Ray cluster in its life,
    and test_serving.py's is that one."""
    _, urls = stack
    assert urls.ray_serve_url is not None and urls.triton_grpc_url is not None
    made = [
        RayServeClient(urls.ray_serve_url, "fixture-chunker-ray"),
        TritonClient(urls.triton_grpc_url, "fixture-chunker-triton"),
    ]
    yield made
    for client in made:
        client.close()


def test_clients_stream_each_part_and_refuse_bad_input_before_any(clients: list[ModelClient]) -> None:
    for client in clients:
        request = fx.ChunkRequest(chunks=3, pause_s=0.05, tag="direct").SerializeToString()
        parts = list(client.predict_stream(request, 30))
        assert [final for final, _ in parts] == [False, False, False, True], client
        assert [fx.Chunk.FromString(payload).index for _, payload in parts[:-1]] == [0, 1, 2]
        response = fx.ChunkResponse.FromString(parts[-1][1])
        assert response.chunks == 3 and response.tag == "direct"
        with pytest.raises(InvalidRequest, match="chunks must be 1..100"):
            list(client.predict_stream(fx.ChunkRequest(chunks=0).SerializeToString(), 30))


def test_clients_give_up_on_a_stream_at_its_deadline(clients: list[ModelClient]) -> None:
    """A stream that would outlast the timeout ends in TimeoutError (retryable), after the parts that came
    within it."""
    for client in clients:
        received = []
        request = fx.ChunkRequest(chunks=3, pause_s=3, tag="slow").SerializeToString()
        with pytest.raises(TimeoutError):
            for part in client.predict_stream(request, 1.5):
                received.append(part)
        assert [final for final, _ in received] == [False], client


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_direct_call_to_a_streaming_model_answers_the_whole_response(
    api: httpx.Client, backend: str
) -> None:
    response = api.post(f"/v1/models/fixture-chunker-{backend}:predict", json={"chunks": 2, "tag": "direct"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["chunks"] == 2 and answer["tag"] == "direct"
    assert base64.b64decode(answer["data"]) == b"chunk 0 of directchunk 1 of direct"
