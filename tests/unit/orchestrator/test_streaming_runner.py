"""The stage runner of a streaming deployment, with a fake streaming client: each chunk is stored as an
artifact and its orate.stage.chunk event sent before the next chunk is taken, in order with sequence
numbers; a failure mid-stream fails the stage with a reason and keeps what was sent."""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path

import pytest
from orate.v1 import jobs_pb2
from orchestrator import codec
from orchestrator.runner import StageRunner
from orchestrator_fakes import FakeConsumer, FakeProducer, FakeStore, MemoryArtifacts
from prometheus_client import REGISTRY

from shared import events
from shared.bus import BusError, Topics
from shared.serving.clients import ModelClient, ModelUnavailable, StreamedPart
from shared.serving.predictor import InvalidRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "proto"))
from orate_fixtures.v1 import fixtures_pb2 as fx  # noqa: E402

TOPICS = Topics("t")
SERVICE = "chunker"


def chunk(index: int) -> StreamedPart:
    return False, fx.Chunk(
        index=index, emitted_unix_s=100.0 + index, data=f"c{index}".encode()
    ).SerializeToString()


WHOLE: StreamedPart = (True, fx.ChunkResponse(chunks=3, data=b"c0c1c2", tag="t").SerializeToString())


class StreamingClient(ModelClient):
    """Yields the scripted parts (an exception is raised where it stands); notes, as it hands out each
    part, how many chunk events the runner had sent by then, and whether the runner closed the stream."""

    def __init__(self, producer: FakeProducer, script: list[StreamedPart | Exception]) -> None:
        self.producer = producer
        self.script = script
        self.events_sent_before: list[int] = []
        self.closed = False

    def predict(self, request: bytes, timeout_s: float) -> bytes:
        raise AssertionError("a streaming stage calls predict_stream")

    def predict_stream(self, request: bytes, timeout_s: float) -> Generator[StreamedPart, None, None]:
        assert fx.ChunkRequest.FromString(request).chunks == 3
        try:
            for part in self.script:
                if isinstance(part, Exception):
                    raise part
                self.events_sent_before.append(sum(r.topic == TOPICS.events for r in self.producer.sent))
                yield part
        finally:
            self.closed = True


class Runner:
    def __init__(
        self, consumer: FakeConsumer, producer: FakeProducer, store: FakeStore, artifacts: MemoryArtifacts
    ) -> None:
        self.consumer, self.producer, self.store, self.artifacts = consumer, producer, store, artifacts
        self.client = StreamingClient(producer, [chunk(0), chunk(1), chunk(2), WHOLE])
        job = jobs_pb2.Job(job_id="j1", pipeline="chunks", tenant="acme", status=jobs_pb2.JOB_STATUS_RUNNING)
        store.put_job(job)
        self.runner = StageRunner(
            SERVICE,
            fx.ChunkRequest,
            fx.ChunkResponse,
            self.client,
            consumer,
            producer,
            store,
            artifacts,
            TOPICS,
            concurrency=2,
            chunk_type=fx.Chunk,
        )

    def run(self, attempt: int = 1) -> tuple[jobs_pb2.StageResult, list[dict]]:
        """The stage result and the chunk events sent to orate.events (parsed CloudEvents), in order."""
        work = jobs_pb2.StageWork(job_id="j1", stage="speak", service=SERVICE, attempt=attempt, timeout_s=9)
        work.request["chunks"].CopyFrom(codec.to_value(3))
        self.consumer.feed(TOPICS.work(SERVICE), "j1", work.SerializeToString())
        self.runner.run_once()
        self.runner.drain()
        sent = self.producer.take()
        # The result comes after every chunk event.
        assert [r.topic for r in sent][-1] == TOPICS.jobs
        (result,) = [
            jobs_pb2.JobCommand.FromString(r.value).stage_result for r in sent if r.topic == TOPICS.jobs
        ]
        chunk_events = [events.from_cloudevent(r.value) for r in sent if r.topic == TOPICS.events]
        assert all(r.key == "j1" for r in sent)
        return result, chunk_events


@pytest.fixture
def runner(
    consumer: FakeConsumer, producer: FakeProducer, store: FakeStore, artifacts: MemoryArtifacts
) -> Runner:
    return Runner(consumer, producer, store, artifacts)


def first_chunks_observed() -> float:
    return REGISTRY.get_sample_value("orate_model_first_chunk_seconds_count", {"service": SERVICE}) or 0.0


def test_each_chunk_is_stored_and_announced_before_the_next_is_taken(runner: Runner) -> None:
    observed = first_chunks_observed()
    result, chunk_events = runner.run()
    assert first_chunks_observed() == observed + 1  # time to the first chunk, once per stream
    # Chunk k's event was sent before the client handed out part k+1.
    assert runner.client.events_sent_before == [0, 1, 2, 3]
    assert [event["type"] for event in chunk_events] == [events.STAGE_CHUNK] * 3
    assert [event["data"].get("sequence", 0) for event in chunk_events] == [0, 1, 2]
    assert [event["id"] for event in chunk_events] == [f"j1:orate.stage.chunk:speak:1:{i}" for i in range(3)]
    assert {event["tenant"] for event in chunk_events} == {"acme"}
    assert {event["data"]["pipeline"] for event in chunk_events} == {"chunks"}
    for index, event in enumerate(chunk_events):
        ref = event["data"]["outputs"]["data"]["artifact"]
        assert ref["uri"] == f"mem://jobs/j1/speak/chunks/1/{index}/data"
        assert runner.artifacts.get(ref["uri"]) == f"c{index}".encode()
        assert event["data"]["outputs"]["response"]["json"] == {
            "index": index,
            "emitted_unix_s": 100.0 + index,
        }
    # The job's event history (the REST and gRPC event streams) holds the same events, in order.
    history = [events.from_cloudevent(data) for data in runner.store.events["j1"]]
    assert [event["id"] for event in history] == [event["id"] for event in chunk_events]
    # The stage's outputs are the whole response's.
    assert result.ok and result.outputs["data"].artifact.uri == "mem://jobs/j1/speak/data"
    assert runner.artifacts.get(result.outputs["data"].artifact) == b"c0c1c2"
    assert len(runner.consumer.done) == 1


def test_a_retried_attempt_streams_under_its_own_attempt(runner: Runner) -> None:
    _, chunk_events = runner.run(attempt=2)
    assert [event["id"] for event in chunk_events][0] == "j1:orate.stage.chunk:speak:2:0"
    assert (
        chunk_events[0]["data"]["outputs"]["data"]["artifact"]["uri"] == "mem://jobs/j1/speak/chunks/2/0/data"
    )


FAILURES = {
    "model unavailable": (ModelUnavailable("replica died"), True, "model call failed: replica died"),
    "invalid request": (InvalidRequest("unreadable text"), False, "invalid request: unreadable text"),
    "timeout": (TimeoutError("slow"), True, "timed out after 9 s"),
}


@pytest.mark.parametrize(("error", "retryable", "reason"), FAILURES.values(), ids=FAILURES.keys())
def test_a_failure_mid_stream_fails_the_stage_and_keeps_the_chunks_sent(
    runner: Runner, error: Exception, retryable: bool, reason: str
) -> None:
    runner.client.script = [chunk(0), chunk(1), error]
    result, chunk_events = runner.run()
    assert not result.ok and result.retryable is retryable and reason in result.error
    assert [event["data"].get("sequence", 0) for event in chunk_events] == [0, 1]
    assert [runner.artifacts.get(e["data"]["outputs"]["data"]["artifact"]["uri"]) for e in chunk_events] == [
        b"c0",
        b"c1",
    ]
    # The work item is settled (its failure reported), not dropped.
    assert len(runner.consumer.done) == 1


def test_a_chunk_the_broker_refuses_fails_the_stage_retryably_and_cancels_the_stream(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(topic: str, key: str, value: bytes, headers: object = None, timeout_s: float = 0) -> None:
        raise BusError("broker down")  # the first chunk's event is not acknowledged

    monkeypatch.setattr(runner.producer, "send_acknowledged", refuse)
    result, chunk_events = runner.run()
    assert not result.ok and result.retryable and "broker down" in result.error
    assert runner.client.closed and runner.client.events_sent_before == [0]
    assert not runner.store.events.get("j1")  # no history entry for an event Kafka does not hold


def test_a_chunk_that_does_not_decode_fails_the_stage_for_good(runner: Runner) -> None:
    runner.client.script = [(False, b"\xff\xff"), WHOLE]
    result, chunk_events = runner.run()
    assert not result.ok and not result.retryable and "does not decode" in result.error
    assert chunk_events == []


def test_a_stream_without_its_response_fails_the_stage_retryably(runner: Runner) -> None:
    runner.client.script = [chunk(0)]
    result, chunk_events = runner.run()
    assert not result.ok and result.retryable and "ended without its response" in result.error
    assert len(chunk_events) == 1
