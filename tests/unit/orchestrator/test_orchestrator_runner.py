"""The stage runner with a fake model client: requests from artifacts, outputs stored, errors classified,
stale work skipped, heartbeats for the engine's deadlines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from orate.v1 import common_pb2, jobs_pb2, models_pb2
from orchestrator import codec
from orchestrator.runner import StageRunner
from orchestrator_fakes import Clock, FakeConsumer, FakeProducer, FakeStore, MemoryArtifacts

from shared.bus import Topics
from shared.serving.clients import ModelClient, ModelUnavailable
from shared.serving.predictor import InvalidRequest
from shared.store import Heartbeat, StageAttempt

TOPICS = Topics("t")
SAMPLE = common_pb2.Motion(layout="arkit-52", fps=30, frames=1, dims=2, data_f32=b"\1" * 8)


class FakeClient(ModelClient):
    def __init__(self, answer: Callable[[models_pb2.FaceVqvaeRequest], bytes]) -> None:
        self.answer = answer
        self.requests: list[models_pb2.FaceVqvaeRequest] = []
        self.timeouts: list[float] = []

    def predict(self, request: bytes, timeout_s: float) -> bytes:
        message = models_pb2.FaceVqvaeRequest.FromString(request)
        self.requests.append(message)
        self.timeouts.append(timeout_s)
        return self.answer(message)


def answer_ok(request: models_pb2.FaceVqvaeRequest) -> bytes:
    return models_pb2.FaceVqvaeResponse(samples=[SAMPLE] * max(request.num_samples, 1)).SerializeToString()


def raising(error: Exception) -> Callable[[models_pb2.FaceVqvaeRequest], bytes]:
    def answer(request: models_pb2.FaceVqvaeRequest) -> bytes:
        raise error

    return answer


class Runner:
    def __init__(
        self,
        consumer: FakeConsumer,
        producer: FakeProducer,
        store: FakeStore,
        artifacts: MemoryArtifacts,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumer, self.producer, self.store, self.artifacts = consumer, producer, store, artifacts
        self.client = FakeClient(answer_ok)
        self.runner = StageRunner(
            "face",
            models_pb2.FaceVqvaeRequest,
            models_pb2.FaceVqvaeResponse,
            self.client,
            consumer,
            producer,
            store,
            artifacts,
            TOPICS,
            concurrency=4,
            clock=clock,
        )
        self.audio = artifacts.put("jobs/j1/_inputs/audio", b"RIFF....")

    def work(self, job_id: str = "j1", attempt: int = 1, **request: object) -> jobs_pb2.StageWork:
        work = jobs_pb2.StageWork(
            job_id=job_id,
            stage="animate",
            service="face",
            attempt=attempt,
            timeout_s=7,
            heartbeat_timeout_s=3,
        )
        for path, value in ({"audio.data": self.audio, "num_samples": 2} | request).items():
            work.request[path].CopyFrom(codec.to_value(value))
        return work

    def run(self, *items: jobs_pb2.StageWork | bytes) -> list[jobs_pb2.StageResult]:
        for item in items:
            value = item if isinstance(item, bytes) else item.SerializeToString()
            self.consumer.feed(TOPICS.work("face"), "j1", value)
        self.runner.run_once()
        self.runner.drain()
        sent = self.producer.take()
        return [jobs_pb2.JobCommand.FromString(r.value).stage_result for r in sent if r.topic == TOPICS.jobs]


@pytest.fixture
def runner(
    consumer: FakeConsumer, producer: FakeProducer, store: FakeStore, artifacts: MemoryArtifacts
) -> Runner:
    return Runner(consumer, producer, store, artifacts)


def job_at(attempt: int, status: int = jobs_pb2.STAGE_STATUS_DISPATCHED) -> jobs_pb2.Job:
    """Job j1 as the engine stored it, its stage animate at this attempt."""
    job = jobs_pb2.Job(job_id="j1", status=jobs_pb2.JOB_STATUS_RUNNING)
    job.stages["animate"].CopyFrom(jobs_pb2.StageState(name="animate", attempt=attempt, status=status))
    return job


def test_request_gets_artifact_bytes_and_outputs_are_stored_as_artifacts(runner: Runner) -> None:
    (result,) = runner.run(runner.work())
    (request,) = runner.client.requests
    assert request.audio.data == b"RIFF...." and request.num_samples == 2
    assert runner.client.timeouts == [7]
    assert result.ok and (result.job_id, result.stage, result.attempt) == ("j1", "animate", 1)
    assert sorted(result.outputs) == ["response", "samples.0.data_f32", "samples.1.data_f32"]
    ref = result.outputs["samples.1.data_f32"].artifact
    assert ref.uri == "mem://jobs/j1/animate/samples.1.data_f32"
    assert runner.artifacts.get(ref) == SAMPLE.data_f32
    assert codec.from_value(result.outputs["response"])["samples"][0]["layout"] == "arkit-52"
    assert result.model_latency_ms >= 0
    assert len(runner.consumer.done) == 1


ERRORS = {
    "invalid request": (InvalidRequest("audio is silent"), False, "invalid request: audio is silent"),
    "timeout": (TimeoutError("slow"), True, "timed out after 7 s"),
    "unavailable": (ModelUnavailable("connection refused"), True, "model call failed: connection refused"),
    "anything else": (RuntimeError("boom"), True, "RuntimeError: boom"),
}


@pytest.mark.parametrize(("error", "retryable", "reason"), ERRORS.values(), ids=ERRORS.keys())
def test_model_errors_are_classified(runner: Runner, error: Exception, retryable: bool, reason: str) -> None:
    runner.client.answer = raising(error)
    (result,) = runner.run(runner.work())
    assert not result.ok
    assert result.retryable is retryable
    assert reason in result.error


def test_request_that_cannot_be_built_is_not_retryable(runner: Runner) -> None:
    (missing,) = runner.run(runner.work(**{"audio.data": common_pb2.ArtifactRef(uri="mem://gone")}))
    (mistyped,) = runner.run(runner.work(num_samples="two"))
    assert not missing.retryable and "missing" in missing.error
    assert not mistyped.retryable and "num_samples" in mistyped.error
    assert runner.client.requests == []


def test_work_of_a_cancelled_job_is_skipped(runner: Runner) -> None:
    runner.store.put_job(jobs_pb2.Job(job_id="j1", status=jobs_pb2.JOB_STATUS_CANCELLED))
    assert runner.run(runner.work()) == []
    assert runner.client.requests == []
    assert len(runner.consumer.done) == 1


def test_undecodable_work_goes_to_the_dlq(runner: Runner) -> None:
    assert runner.run(b"\xff\xff") == []
    (record,) = [r for r in runner.producer.log if r.startswith("send")]
    assert record == f"send {TOPICS.dlq}"
    assert len(runner.consumer.done) == 1


def test_runner_waits_for_the_retry_backoff(runner: Runner) -> None:
    work = runner.work()
    started = time.time()
    work.not_before_unix_ms = int((started + 0.2) * 1000)
    (result,) = runner.run(work)
    assert result.ok
    assert time.time() - started >= 0.19  # not_before is whole milliseconds


def test_items_of_a_batch_run_concurrently(runner: Runner) -> None:
    in_flight, peak, lock = 0, 0, threading.Lock()

    def slow(request: models_pb2.FaceVqvaeRequest) -> bytes:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.1)
        with lock:
            in_flight -= 1
        return answer_ok(request)

    runner.client.answer = slow
    results = runner.run(*(runner.work(job_id=f"j{n}") for n in range(4)))
    assert sorted(r.job_id for r in results) == ["j0", "j1", "j2", "j3"]
    assert peak == 4


def test_a_slow_item_holds_back_the_commit_of_later_ones_but_not_their_results(runner: Runner) -> None:
    release = threading.Event()

    def first_is_slow(request: models_pb2.FaceVqvaeRequest) -> bytes:
        if request.identity == "slow":
            release.wait(5)
        return answer_ok(request)

    runner.client.answer = first_is_slow
    for work in (runner.work(job_id="j0", identity="slow"), runner.work(job_id="j1")):
        runner.consumer.feed(TOPICS.work("face"), work.job_id, work.SerializeToString())
    runner.runner.run_once()
    deadline = time.monotonic() + 5
    while not runner.producer.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.runner.run_once(poll_timeout_s=0.01)  # settles: j1's result is acknowledged
    (sent,) = runner.producer.sent
    assert jobs_pb2.JobCommand.FromString(sent.value).stage_result.job_id == "j1"
    assert runner.consumer.done == []  # j0, before it on the partition, is still running
    release.set()
    runner.runner.drain()
    assert [record.key for record in runner.consumer.done] == ["j1"]  # processed up to the last one
    assert runner.consumer.done[0].offset == 1


STALE = {
    "the stage moved on to a later attempt (a deadline retried it)": (job_at(2), 1),
    "the attempt finished already (a replayed item)": (job_at(1, jobs_pb2.STAGE_STATUS_SUCCEEDED), 1),
}


@pytest.mark.parametrize(("job", "attempt"), STALE.values(), ids=STALE.keys())
def test_work_of_an_attempt_the_engine_no_longer_wants_is_skipped(
    runner: Runner, job: jobs_pb2.Job, attempt: int
) -> None:
    runner.store.put_job(job)
    assert runner.run(runner.work(attempt=attempt)) == []
    assert runner.client.requests == []
    assert len(runner.consumer.done) == 1


CURRENT = {
    "the dispatch of this attempt is stored": (job_at(2), 2),
    "the job is read before the engine stored the retry's dispatch": (job_at(1), 2),
    "the job is read before the engine stored the first dispatch": (
        job_at(0, jobs_pb2.STAGE_STATUS_PENDING),
        1,
    ),
}


@pytest.mark.parametrize(("job", "attempt"), CURRENT.values(), ids=CURRENT.keys())
def test_work_of_the_current_or_a_newer_attempt_runs(runner: Runner, job: jobs_pb2.Job, attempt: int) -> None:
    runner.store.put_job(job)
    (result,) = runner.run(runner.work(attempt=attempt))
    assert result.ok and result.attempt == attempt


def test_runner_beats_at_pickup_and_every_third_of_the_heartbeat_timeout_until_done(
    consumer: FakeConsumer, producer: FakeProducer, store: FakeStore, artifacts: MemoryArtifacts, clock: Clock
) -> None:
    runner = Runner(consumer, producer, store, artifacts, clock)
    release = threading.Event()

    def slow(request: models_pb2.FaceVqvaeRequest) -> bytes:
        release.wait(5)
        return answer_ok(request)

    runner.client.answer = slow
    picked_up_ms = int(clock.now * 1000)
    consumer.feed(TOPICS.work("face"), "j1", runner.work().SerializeToString())
    runner.runner.run_once()
    attempt = StageAttempt("j1", "animate", 1)
    assert store.beats == {attempt: Heartbeat(picked_up_ms, picked_up_ms)}
    clock.now += 0.999
    runner.runner.run_once(poll_timeout_s=0.01)
    assert store.beats[attempt].beat_unix_ms == picked_up_ms  # heartbeat_timeout_s 3: a beat a second
    clock.now += 0.001
    runner.runner.run_once(poll_timeout_s=0.01)
    assert store.beats[attempt] == Heartbeat(picked_up_ms, picked_up_ms + 1_000)
    release.set()
    runner.runner.drain()
    (sent,) = producer.take()
    assert jobs_pb2.JobCommand.FromString(sent.value).stage_result.started_unix_ms == picked_up_ms
    clock.now += 5
    runner.runner.run_once(poll_timeout_s=0.01)
    assert store.beats[attempt].beat_unix_ms == picked_up_ms + 1_000  # done: no more beats


def test_an_item_in_retry_backoff_reports_its_start_at_the_end_of_the_backoff(runner: Runner) -> None:
    work = runner.work(attempt=2)
    work.not_before_unix_ms = int((time.time() + 0.05) * 1000)
    (result,) = runner.run(work)
    assert result.started_unix_ms == work.not_before_unix_ms
    assert runner.store.beats[StageAttempt("j1", "animate", 2)].started_unix_ms == work.not_before_unix_ms
