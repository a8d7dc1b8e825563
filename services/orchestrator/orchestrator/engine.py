"""The engine (`python -m orchestrator.engine`): the single writer of each job's state, fed by orate.jobs."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from google.protobuf.message import DecodeError
from orate.v1 import jobs_pb2

from orchestrator import codec, metrics
from orchestrator.pipelines import load_pipelines
from orchestrator.process import read_deployments, start_worker, worker_ready
from orchestrator.settings import OrchestratorSettings
from orchestrator.transitions import DLQ_UNDECODABLE, Effects, JobMachine, command_job_id
from shared import events
from shared.bus import TRACEPARENT_HEADER, Consumer, Producer, Record, Topics, ensure_topics, job_headers
from shared.store import JobStore

log = logging.getLogger(__name__)

ENGINE_GROUP = "orate-engine"


class Engine:
    """Per poll batch: apply every command, produce and flush the effects, write the changed jobs and then
    their events to Redis, then mark the records processed. A crash anywhere replays the batch, which
    re-produces the same effects (event ids are deterministic, stale results are ignored).

    Jobs are read from Redis once per batch rather than cached across batches: Redis answers in ~0.2 ms,
    and a cross-batch cache would go stale when a rebalance moves a partition away and back, which the bus
    does not report."""

    def __init__(
        self, machine: JobMachine, consumer: Consumer, producer: Producer, store: JobStore, topics: Topics
    ) -> None:
        self._machine = machine
        self._consumer = consumer
        self._producer = producer
        self._store = store
        self._topics = topics

    def run(self, stop: threading.Event, max_records: int = 100, poll_timeout_s: float = 0.1) -> None:
        with metrics.LagReporter(self._consumer, ENGINE_GROUP):
            while not stop.is_set():
                self.run_once(max_records, poll_timeout_s)

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
        self._store.write(list(changed.values()), history)
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
    try:
        Engine(JobMachine(pipelines, topics.jobs), consumer, producer, store, topics).run(stop)
    finally:
        consumer.close()
        producer.close()
        store.close()


if __name__ == "__main__":
    main()
