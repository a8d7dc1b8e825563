"""A stage runner (`python -m orchestrator.runner --service NAME`): runs one model service's work items."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message
from orate.v1 import common_pb2, jobs_pb2

from orchestrator import codec, metrics
from orchestrator.chunks import ChunkForwarder
from orchestrator.process import read_deployments, start_worker, worker_ready
from orchestrator.settings import OrchestratorSettings
from orchestrator.transitions import DLQ_UNDECODABLE, is_terminal
from shared.artifacts import ArtifactNotFound, ArtifactStore, artifact_store, job_artifact_key
from shared.bus import TRACEPARENT_HEADER, Consumer, Producer, Record, Topics, ensure_topics, job_headers
from shared.protos import message_class
from shared.serving.clients import ModelClient, ModelUnavailable, model_client
from shared.serving.predictor import InvalidRequest
from shared.store import Heartbeat, JobStore, StageAttempt

log = logging.getLogger(__name__)


def runner_group(service: str) -> str:
    return f"orate-runner-{service}"


class StageFailed(Exception):
    """A work item that cannot succeed now; retryable says whether another attempt might."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.retryable = retryable


@dataclass
class _Beating:
    """An item in flight: when it started, how often it beats, and when next."""

    started_unix_ms: int
    interval_ms: int
    next_unix_ms: int


class StageRunner:
    """Runs work items as they arrive, up to `concurrency` at a time (so the deployment's batcher sees
    concurrent requests, and no item waits for a slower neighbour); each result goes to orate.jobs as soon
    as its item is done. A record is marked processed once its result is acknowledged and every earlier
    record of its partition is too, so a crash replays, never skips, unfinished items.

    The engine's deadlines see the runner through heartbeats in Redis (not Kafka: no records per stage):
    one at pickup, in the round trip that reads the items' jobs, then, from the run loop, one for each item
    in flight every third of its heartbeat_timeout_s, the due ones in one round trip. A loop that stops
    polling stops beating too, and the engine retries its items elsewhere."""

    def __init__(
        self,
        service: str,
        request_type: type[Message],
        response_type: type[Message],
        client: ModelClient,
        consumer: Consumer,
        producer: Producer,
        store: JobStore,
        artifacts: ArtifactStore,
        topics: Topics,
        concurrency: int,
        clock: Callable[[], float] = time.time,
        chunk_type: type[Message] | None = None,
    ) -> None:
        self._service = service
        self._request_type = request_type
        self._response_type = response_type
        self._client = client
        self._consumer = consumer
        self._producer = producer
        self._store = store
        self._artifacts = artifacts
        self._topics = topics
        self._concurrency = concurrency
        self._clock = clock
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"runner-{service}")
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._running = 0
        # Per partition, the records taken in offset order; acknowledged ones are marked done.
        self._taken: dict[tuple[str, int], deque[Record]] = {}
        self._acknowledged: set[tuple[str, int, int]] = set()
        self._resend: list[tuple[Record, bytes, dict[str, str]]] = []
        self._beating: dict[StageAttempt, _Beating] = {}
        # A streaming deployment's chunks are forwarded as they come (orchestrator.chunks).
        self._chunks = (
            ChunkForwarder(service, chunk_type, producer, store, artifacts, topics, clock)
            if chunk_type
            else None
        )

    def run(self, stop: threading.Event, poll_timeout_s: float = 0.1) -> None:
        with metrics.LagReporter(self._consumer, runner_group(self._service)):
            while not stop.is_set():
                self.run_once(poll_timeout_s)
        self.drain()

    def run_once(self, poll_timeout_s: float = 0.1) -> int:
        """Settle finished items and beat for those in flight, then start the records of one poll; returns
        how many it took."""
        self._settle()
        self._beat()
        with self._room:
            if self._running >= self._concurrency and not self._room.wait(poll_timeout_s):
                return 0
            room = self._concurrency - self._running
        records = self._consumer.poll_batch(room, poll_timeout_s)
        if not records:
            return 0
        works: list[tuple[Record, jobs_pb2.StageWork]] = []
        for record in records:
            self._taken.setdefault((record.topic, record.partition), deque()).append(record)
            try:
                works.append((record, jobs_pb2.StageWork.FromString(record.value)))
            except DecodeError as exc:
                self._dead_letter(record, f"not a StageWork: {exc}")
        now_ms = self._now_ms()
        # An item waiting out its retry backoff starts when that ends.
        starts = {_attempt(work): max(now_ms, work.not_before_unix_ms) for _, work in works}
        beats = {attempt: Heartbeat(started, now_ms) for attempt, started in starts.items()}
        jobs = self._store.get_jobs_and_beat(sorted({work.job_id for _, work in works}), beats)
        for record, work in works:
            if _stale(jobs.get(work.job_id), work):
                self._acknowledge(record)
                continue
            attempt = _attempt(work)
            interval_ms = int(work.heartbeat_timeout_s * 1000 / 3)
            with self._lock:
                # Work from an engine without deadlines (no heartbeat_timeout_s) gets the pickup beat only.
                if interval_ms > 0:
                    self._beating[attempt] = _Beating(starts[attempt], interval_ms, now_ms + interval_ms)
                self._running += 1
            self._pool.submit(self._run_and_report, record, work, starts[attempt], jobs.get(work.job_id))
        return len(records)

    def drain(self, timeout_s: float = 60.0) -> None:
        """Wait for every started item's result to be acknowledged, and mark the records processed."""
        deadline = time.monotonic() + timeout_s
        while any(self._taken.values()) and time.monotonic() < deadline:
            self._producer.flush()
            self._settle()
            self._beat()
            if any(self._taken.values()):
                time.sleep(0.005)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def _run_and_report(
        self, record: Record, work: jobs_pb2.StageWork, started_unix_ms: int, job: jobs_pb2.Job | None
    ) -> None:
        try:
            result = self._run_item(work, job, record.headers.get(TRACEPARENT_HEADER))
            result.started_unix_ms = started_unix_ms
            value = jobs_pb2.JobCommand(stage_result=result).SerializeToString()
            headers = job_headers(
                result.job_id, record.headers.get(TRACEPARENT_HEADER), codec.PROTOBUF_CONTENT_TYPE
            )
            self._send_result(record, value, headers)
        finally:
            with self._room:
                self._beating.pop(_attempt(work), None)
                self._running -= 1
                self._room.notify()

    def _beat(self) -> None:
        """Heartbeat the items in flight whose beat is due."""
        now_ms = self._now_ms()
        with self._lock:
            due = {a: beating for a, beating in self._beating.items() if beating.next_unix_ms <= now_ms}
            for beating in due.values():
                beating.next_unix_ms = now_ms + beating.interval_ms
        if due:
            self._store.beat({a: Heartbeat(beating.started_unix_ms, now_ms) for a, beating in due.items()})

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _send_result(self, record: Record, value: bytes, headers: dict[str, str]) -> None:
        def delivered(error: Exception | None) -> None:
            if error is not None:
                log.warning("result of %s/%d@%d not delivered (%s); resending", *_where(record), error)
                with self._lock:
                    self._resend.append((record, value, headers))
                return
            self._acknowledge(record)

        self._producer.send(self._topics.jobs, record.key, value, headers, delivered)

    def _acknowledge(self, record: Record) -> None:
        with self._lock:
            self._acknowledged.add(_where(record))

    def _settle(self) -> None:
        """Serve delivery reports, resend failed results, and mark acknowledged records processed."""
        self._producer.poll(0)
        with self._lock:
            resend, self._resend = self._resend, []
        for record, value, headers in resend:
            self._send_result(record, value, headers)
        for taken in self._taken.values():
            last = None
            with self._lock:
                while taken and _where(taken[0]) in self._acknowledged:
                    last = taken.popleft()
                    self._acknowledged.discard(_where(last))
            if last is not None:
                self._consumer.processed(last)

    def _run_item(
        self, work: jobs_pb2.StageWork, job: jobs_pb2.Job | None, traceparent: str | None
    ) -> jobs_pb2.StageResult:
        result = jobs_pb2.StageResult(job_id=work.job_id, stage=work.stage, attempt=work.attempt)
        delay_s = work.not_before_unix_ms / 1000 - self._clock()
        if delay_s > 0:
            time.sleep(delay_s)  # retry backoff set by the engine
        try:
            response, latency_s = self._call(work, job, traceparent)
            codec.replace_map(result.outputs, self._store_outputs(work, response))
        except StageFailed as exc:
            log.info("job %s stage %s#%d failed: %s", work.job_id, work.stage, work.attempt, exc)
            result.error, result.retryable = str(exc), exc.retryable
            return result
        except Exception as exc:  # anything unforeseen (artifact store down...) may pass on a retry
            log.exception("job %s stage %s#%d: unexpected error", work.job_id, work.stage, work.attempt)
            result.error, result.retryable = f"{type(exc).__name__}: {exc}", True
            return result
        result.ok = True
        result.model_latency_ms = latency_s * 1000
        return result

    def _call(
        self, work: jobs_pb2.StageWork, job: jobs_pb2.Job | None, traceparent: str | None
    ) -> tuple[Message, float]:
        fields = {}
        for path, value in work.request.items():
            fields[path] = codec.from_value(value)
            if isinstance(fields[path], common_pb2.ArtifactRef):
                try:
                    fields[path] = self._artifacts.get(fields[path])
                except ArtifactNotFound as exc:
                    raise StageFailed(
                        f"input artifact of {path!r} is missing: {exc}", retryable=False
                    ) from exc
        try:
            request = codec.build_request(self._request_type, fields)
        except ValueError as exc:
            raise StageFailed(str(exc), retryable=False) from exc
        started = time.monotonic()
        try:
            if self._chunks is None:
                payload = self._client.predict(request.SerializeToString(), work.timeout_s)
            else:
                parts = self._client.predict_stream(request.SerializeToString(), work.timeout_s)
                payload = self._chunks.forward(parts, work, job, traceparent)
        except DecodeError as exc:  # only a streamed chunk is decoded before the call ends
            raise StageFailed("the deployment streamed a chunk that does not decode", False) from exc
        except InvalidRequest as exc:
            raise StageFailed(f"invalid request: {exc}", retryable=False) from exc
        except TimeoutError as exc:
            raise StageFailed(f"model call timed out after {work.timeout_s:g} s", retryable=True) from exc
        except ModelUnavailable as exc:
            raise StageFailed(f"model call failed: {exc}", retryable=True) from exc
        finally:
            latency_s = time.monotonic() - started
            metrics.MODEL_CALL_DURATION.labels(self._service).observe(latency_s)
        try:
            return self._response_type.FromString(payload), latency_s
        except DecodeError as exc:
            raise StageFailed(f"the deployment answered a non-{self._response_type.__name__}", False) from exc

    def _store_outputs(self, work: jobs_pb2.StageWork, response: Message) -> dict[str, common_pb2.Value]:
        blobs, json_response = codec.split_response(response)
        outputs = {}
        for blob in blobs:
            key = job_artifact_key(work.job_id, work.stage, blob.path)
            outputs[blob.path] = common_pb2.Value(
                artifact=self._artifacts.put(key, blob.data, blob.media_type)
            )
        outputs[codec.RESPONSE] = codec.to_value(json_response)
        return outputs

    def _dead_letter(self, record: Record, reason: str) -> None:
        log.warning(
            "undecodable work item at %s/%d@%d: %s", record.topic, record.partition, record.offset, reason
        )
        letter = jobs_pb2.DeadLetter(
            job_id=record.key,
            service=self._service,
            reason=reason,
            source_topic=record.topic,
            payload=record.value,
            time_unix_ms=int(self._clock() * 1000),
        )
        headers = job_headers(record.key, record.headers.get(TRACEPARENT_HEADER), codec.PROTOBUF_CONTENT_TYPE)
        # Acknowledged even if the DLQ write fails: a record that cannot be decoded never will be.
        self._producer.send(
            self._topics.dlq,
            record.key,
            letter.SerializeToString(),
            headers,
            lambda _: self._acknowledge(record),
        )
        metrics.DLQ_RECORDS.labels(self._service, DLQ_UNDECODABLE).inc()


def _where(record: Record) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


def _attempt(work: jobs_pb2.StageWork) -> StageAttempt:
    return StageAttempt(work.job_id, work.stage, work.attempt)


def _stale(job: jobs_pb2.Job | None, work: jobs_pb2.StageWork) -> bool:
    """Work whose result would be ignored is skipped: its job finished (cancelled, failed), or its stage
    has moved past this attempt (a deadline retried it) or finished it (a replayed item). The job may be
    read before the engine has stored this dispatch (it produces the work first): it then shows an earlier
    attempt, or none, and the work runs."""
    if job is None:
        return False
    if is_terminal(job):
        return True
    state = job.stages.get(work.stage)
    if state is None:
        return False
    if state.attempt != work.attempt:
        return state.attempt > work.attempt
    return state.status != jobs_pb2.STAGE_STATUS_DISPATCHED


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--service", required=True, help="the model service whose work items to run")
    args = parser.parse_args(argv)
    settings = OrchestratorSettings()
    stop = start_worker(settings)
    deployments = read_deployments(settings)
    spec = deployments.get(args.service)
    topics = Topics(settings.kafka.topic_prefix)
    ensure_topics(settings.kafka, [topics.work(args.service), topics.jobs, topics.dlq])
    client_id = f"{runner_group(args.service)}-{socket.gethostname()}-{os.getpid()}"
    store = JobStore(settings.redis)
    producer = Producer(settings.kafka, client_id)
    consumer = Consumer(settings.kafka, runner_group(args.service), [topics.work(args.service)], client_id)
    runner = StageRunner(
        args.service,
        message_class(spec.request_type, deployments.proto_modules),
        message_class(spec.response_type, deployments.proto_modules),
        model_client(spec, settings.endpoints),
        consumer,
        producer,
        store,
        artifact_store(settings.artifacts),
        topics,
        settings.runner.concurrency,
        chunk_type=message_class(spec.chunk_type, deployments.proto_modules) if spec.chunk_type else None,
    )
    log.info("runner for %s up (%s backend)", args.service, spec.backend)
    worker_ready(settings)
    try:
        runner.run(stop)
    finally:
        consumer.close()
        runner.close()
        producer.close()
        store.close()


if __name__ == "__main__":
    main()
