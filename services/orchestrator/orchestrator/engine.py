"""The engine (`python -m orchestrator.engine`): the single writer of each job's state, fed by orate.jobs."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from google.protobuf.message import DecodeError
from orate.v1 import jobs_pb2

from orchestrator import codec, metrics
from orchestrator.pipelines import Pipeline, StageSpec, load_pipelines
from orchestrator.process import read_deployments, start_worker, worker_ready
from orchestrator.settings import EngineSettings, OrchestratorSettings
from orchestrator.transitions import (
    DEADLINE_LABELS,
    DLQ_UNDECODABLE,
    Effects,
    JobMachine,
    command_job_id,
    dispatched_state,
    judge_deadline,
)
from shared import events
from shared.bus import TRACEPARENT_HEADER, Consumer, Producer, Record, Topics, ensure_topics, job_headers
from shared.store import QUEUED_RESEND_MS, SUBMIT_TIMER, Heartbeat, JobStore, StageAttempt

log = logging.getLogger(__name__)

ENGINE_GROUP = "orate-engine"


class DeadlineScanner:
    """Turns passed stage deadlines into StageDeadline commands on orate.jobs, keyed by job id, so that the
    partition's single writer applies them in order with the job's other commands.

    The timers are one Redis sorted set that the engine writes with its jobs (`JobStore.write`), not tied
    to partitions: every engine scans all of it, and a restart or rebalance loses none. A scan claims the
    due timers for resend_s (other engines skip them meanwhile), reads their jobs and heartbeats, and then
    drops a timer whose attempt is no longer dispatched, moves one whose deadlines are still ahead, or
    sends the command and leaves the claim to re-send it after resend_s should the command be lost.
    Duplicates (two engines, a resend) are ignored by the state machine like duplicate results.

    A queued job's timer (`SUBMIT_TIMER`) sends its SubmitJob again, from the job the API stored, while
    the job stays queued: a submit the broker lost (a crash loses its last second) is not a lost job. The
    engine ignores the submit of a job that has left the queue, so a slow first one costs nothing."""

    def __init__(
        self,
        pipelines: Mapping[str, Pipeline],
        store: JobStore,
        producer: Producer,
        topics: Topics,
        settings: EngineSettings,
        clock: Callable[[], float] = time.time,
        batch: int = 256,
    ) -> None:
        self._pipelines = pipelines
        self._store = store
        self._producer = producer
        self._topics = topics
        self._grace_ms = int(settings.start_to_close_grace_s * 1000)
        self._resend_ms = int(settings.deadline_resend_s * 1000)
        self._clock = clock
        self._batch = batch

    def scan(self) -> int:
        """Handle every due timer; returns how many deadline commands were sent."""
        sent = 0
        while True:
            now_ms = int(self._clock() * 1000)
            claimed = self._store.claim_due_deadlines(now_ms, self._resend_ms, self._batch)
            if not claimed:
                return sent
            jobs, beats = self._store.deadline_facts(claimed)
            later: dict[StageAttempt, int] = {}
            done: list[StageAttempt] = []
            for attempt in claimed:
                job = jobs.get(attempt.job_id)
                if attempt.stage == SUBMIT_TIMER:
                    if job is None or job.status != jobs_pb2.JOB_STATUS_QUEUED:
                        done.append(attempt)
                    else:
                        self._resubmit(job)
                        later[attempt] = now_ms + QUEUED_RESEND_MS
                        sent += 1
                    continue
                state = dispatched_state(job, attempt.stage, attempt.attempt)
                if job is None or state is None:
                    done.append(attempt)
                    continue
                beat = beats.get(attempt)
                check = judge_deadline(state, beat, self._spec(job, attempt.stage), now_ms, self._grace_ms)
                if check is None:
                    log.warning(
                        "job %s: pipeline %r is not loaded here; left to others", job.job_id, job.pipeline
                    )
                elif check.expired is None:
                    later[attempt] = check.look_again_unix_ms
                else:
                    self._send(attempt, check.expired, beat, now_ms)
                    sent += 1
            if sent:
                self._producer.flush()
            self._store.settle_deadlines(later, done)
            if len(claimed) < self._batch:
                return sent

    def _send(
        self,
        attempt: StageAttempt,
        kind: jobs_pb2.DeadlineKind.ValueType,
        beat: Heartbeat | None,
        now_ms: int,
    ) -> None:
        log.info(
            "job %s: %s deadline of %s#%d passed",
            attempt.job_id,
            DEADLINE_LABELS[kind],
            attempt.stage,
            attempt.attempt,
        )
        deadline = jobs_pb2.StageDeadline(
            job_id=attempt.job_id,
            stage=attempt.stage,
            attempt=attempt.attempt,
            kind=kind,
            started_unix_ms=beat.started_unix_ms if beat else 0,
            last_heartbeat_unix_ms=beat.beat_unix_ms if beat else 0,
            expired_unix_ms=now_ms,
        )
        value = jobs_pb2.JobCommand(stage_deadline=deadline).SerializeToString()
        headers = job_headers(attempt.job_id, content_type=codec.PROTOBUF_CONTENT_TYPE)
        self._producer.send(self._topics.jobs, attempt.job_id, value, headers)

    def _resubmit(self, job: jobs_pb2.Job) -> None:
        queued_s = self._clock() - job.created_unix_ms / 1000
        log.warning("job %s: still queued %.0f s after it was stored; submitted again", job.job_id, queued_s)
        metrics.SUBMITS_RESENT.labels(job.pipeline).inc()
        value = jobs_pb2.JobCommand(submit=jobs_pb2.SubmitJob(job=job)).SerializeToString()
        headers = job_headers(job.job_id, content_type=codec.PROTOBUF_CONTENT_TYPE)
        self._producer.send(self._topics.jobs, job.job_id, value, headers)

    def _spec(self, job: jobs_pb2.Job, stage: str) -> StageSpec | None:
        pipeline = self._pipelines.get(job.pipeline)
        return pipeline.stage(stage) if pipeline is not None else None


class Engine:
    """Per poll batch: apply every command, produce and flush the effects, write the changed jobs (with
    their deadline timers, index entries of new jobs, and the finished ones' release from their tenants'
    concurrent-jobs quota) and then their events to Redis, then mark the records processed. A crash
    anywhere replays the batch, which re-produces the same effects (event ids are deterministic, stale
    results are ignored). Between batches, every scan_interval_s, the deadline scanner runs.

    Jobs are read from Redis once per batch rather than cached across batches: Redis answers in ~0.2 ms,
    and a cross-batch cache would go stale when a rebalance moves a partition away and back, which the bus
    does not report."""

    def __init__(
        self,
        machine: JobMachine,
        consumer: Consumer,
        producer: Producer,
        store: JobStore,
        topics: Topics,
        deadlines: DeadlineScanner,
        scan_interval_s: float = 0.5,
    ) -> None:
        self._machine = machine
        self._consumer = consumer
        self._producer = producer
        self._store = store
        self._topics = topics
        self._deadlines = deadlines
        self._scan_interval_s = scan_interval_s

    def run(self, stop: threading.Event, max_records: int = 100, poll_timeout_s: float = 0.1) -> None:
        next_scan = 0.0
        with metrics.LagReporter(self._consumer, ENGINE_GROUP):
            while not stop.is_set():
                self.run_once(max_records, poll_timeout_s)
                if time.monotonic() >= next_scan:
                    self._deadlines.scan()
                    next_scan = time.monotonic() + self._scan_interval_s

    def run_once(self, max_records: int = 100, poll_timeout_s: float = 0.1) -> int:
        """Process one poll batch; returns how many records it held."""
        records = self._consumer.poll_batch(max_records, poll_timeout_s)
        if not records:
            return 0
        decoded = [(record, _decode(record)) for record in records]
        job_ids = {
            command_job_id(command) for _, command in decoded if isinstance(command, jobs_pb2.JobCommand)
        }
        jobs = self._store.get_jobs(sorted(job_ids))
        # A job changed here that was not stored before came as a SubmitJob produced straight to Kafka (the
        # API stores its jobs before it produces them): the write lists it in its tenant's index.
        stored = set(jobs)
        changed: dict[str, jobs_pb2.Job] = {}
        history: list[tuple[str, bytes]] = []
        for record, command in decoded:
            if isinstance(command, str):
                self._dead_letter_record(record, command)
                continue
            job_id = command_job_id(command)
            job, effects = self._machine.apply(jobs.get(job_id), command, record.value)
            if job is None:
                continue
            jobs[job_id] = changed[job_id] = job
            history.extend(self._produce(record, effects))
            metrics.observe_effects(job, effects)
        # Effects reach the broker before the state that records them, so a crash re-produces, never loses.
        self._producer.flush()
        # Jobs before their events: a client that sees job.completed and reads the job finds it finished.
        self._store.write(list(changed.values()), history, new=changed.keys() - stored)
        for record in records:
            self._consumer.processed(record)
        return len(records)

    def _produce(self, record: Record, effects: Effects) -> list[tuple[str, bytes]]:
        """Send a command's effects; returns the CloudEvents for the job's event history."""
        traceparent = record.headers.get(TRACEPARENT_HEADER)
        for work in effects.work:
            self._send(self._topics.work(work.service), work.job_id, work.SerializeToString(), traceparent)
        for dead in effects.dead_letters:
            self._send(self._topics.dlq, dead.letter.job_id, dead.letter.SerializeToString(), traceparent)
        history = []
        for event in effects.events:
            cloudevent = events.to_cloudevent(event)
            headers = job_headers(event.job_id, traceparent, events.CLOUDEVENTS_CONTENT_TYPE)
            self._producer.send(self._topics.events, event.job_id, cloudevent, headers)
            history.append((event.job_id, cloudevent))
        return history

    def _send(self, topic: str, job_id: str, value: bytes, traceparent: str | None) -> None:
        self._producer.send(
            topic, job_id, value, job_headers(job_id, traceparent, codec.PROTOBUF_CONTENT_TYPE)
        )

    def _dead_letter_record(self, record: Record, reason: str) -> None:
        log.warning(
            "undecodable command at %s/%d@%d: %s", record.topic, record.partition, record.offset, reason
        )
        letter = jobs_pb2.DeadLetter(
            job_id=record.key,
            reason=reason,
            source_topic=record.topic,
            payload=record.value,
            time_unix_ms=int(time.time() * 1000),
        )
        self._send(
            self._topics.dlq, record.key, letter.SerializeToString(), record.headers.get(TRACEPARENT_HEADER)
        )
        metrics.DLQ_RECORDS.labels("", DLQ_UNDECODABLE).inc()


def _decode(record: Record) -> jobs_pb2.JobCommand | str:
    """The command, or why it cannot be applied."""
    try:
        command = jobs_pb2.JobCommand.FromString(record.value)
    except DecodeError as exc:
        return f"not a JobCommand: {exc}"
    if command.WhichOneof("command") is None:
        return "empty JobCommand"
    if not command_job_id(command):
        return "JobCommand without a job id"
    if (
        command.WhichOneof("command") == "stage_deadline"
        and command.stage_deadline.kind not in DEADLINE_LABELS
    ):
        return f"StageDeadline of unknown kind {command.stage_deadline.kind}"
    return command


def main() -> None:
    settings = OrchestratorSettings()
    stop = start_worker(settings)
    deployments = read_deployments(settings)
    pipelines = load_pipelines(settings.pipeline_dirs, deployments)
    topics = Topics(settings.kafka.topic_prefix)
    services = sorted({spec.service for spec in deployments.deployments})
    ensure_topics(settings.kafka, [topics.jobs, topics.events, topics.dlq, *map(topics.work, services)])
    client_id = f"orate-engine-{socket.gethostname()}-{os.getpid()}"
    store = JobStore(settings.redis)
    producer = Producer(settings.kafka, client_id)
    consumer = Consumer(settings.kafka, ENGINE_GROUP, [topics.jobs], client_id)
    log.info("engine up: %d pipelines %s", len(pipelines), sorted(pipelines))
    worker_ready(settings)
    deadlines = DeadlineScanner(pipelines, store, producer, topics, settings.engine)
    machine = JobMachine(pipelines, topics.jobs)
    engine = Engine(
        machine, consumer, producer, store, topics, deadlines, settings.engine.deadline_scan_interval_s
    )
    try:
        engine.run(stop)
    finally:
        consumer.close()
        producer.close()
        store.close()


if __name__ == "__main__":
    main()
