"""The job service behind REST and gRPC: submit, get, cancel, artifacts, events and the pipeline list."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from orate.v1 import jobs_pb2

from orchestrator import codec
from orchestrator.errors import BrokerUnavailable, NotFound, SubmitInProgress, UnknownPipeline
from orchestrator.inputs import MediaUpload, check_inputs
from orchestrator.pipelines import Pipeline
from orchestrator.settings import ApiSettings
from orchestrator.transitions import is_terminal
from shared.artifacts import ArtifactStore, job_artifact_key
from shared.bus import BusError, Producer, Topics, job_headers
from shared.store import JobStore

log = logging.getLogger(__name__)

INPUTS_STAGE = "_inputs"


class JobService:
    def __init__(
        self,
        pipelines: Mapping[str, Pipeline],
        store: JobStore,
        producer: Producer,
        artifacts: ArtifactStore,
        topics: Topics,
        settings: ApiSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pipelines = pipelines
        self._store = store
        self._producer = producer
        self._artifacts = artifacts
        self._topics = topics
        self._settings = settings
        self._clock = clock

    def pipelines(self) -> list[Pipeline]:
        return sorted(self._pipelines.values(), key=lambda pipeline: pipeline.name)

    def submit(
        self, pipeline_name: str, inputs: Mapping[str, Any], idempotency_key: str = ""
    ) -> tuple[jobs_pb2.Job, bool]:
        """The queued job and whether this call created it (False: the idempotency key's earlier job).
        Returns only once the broker has acknowledged the SubmitJob command."""
        pipeline = self._pipelines.get(pipeline_name)
        if pipeline is None:
            raise UnknownPipeline(
                f"unknown pipeline {pipeline_name!r} (known: {', '.join(sorted(self._pipelines))})"
            )
        values = check_inputs(pipeline, inputs, self._settings.max_audio_seconds)
        job_id = uuid.uuid4().hex
        if idempotency_key:
            existing = self._store.claim_idempotency_key(idempotency_key, job_id)
            if existing is not None:
                return self._existing(existing, idempotency_key), False
        try:
            job = self._queued_job(job_id, pipeline, values, idempotency_key)
            self._store.put_job(job)
            self._produce(job_id, jobs_pb2.JobCommand(submit=jobs_pb2.SubmitJob(job=job)))
        except Exception:
            # Not accepted: free the key so that the client's retry submits afresh.
            if idempotency_key:
                self._store.release_idempotency_key(idempotency_key, job_id)
            raise
        return job, True

    def get(self, job_id: str) -> jobs_pb2.Job:
        job = self._store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def cancel(self, job_id: str, reason: str = "") -> jobs_pb2.Job:
        """Ask the engine to cancel; the job as it stands (a finished job is left alone)."""
        job = self.get(job_id)
        if not is_terminal(job):
            self._produce(
                job_id, jobs_pb2.JobCommand(cancel=jobs_pb2.CancelJob(job_id=job_id, reason=reason))
            )
        return job

    def artifact(self, job_id: str, stage: str, path: str) -> tuple[bytes, str]:
        """An input (stage `_inputs`) or stage output artifact: its bytes and media type."""
        job = self.get(job_id)
        if stage == INPUTS_STAGE:
            value = job.inputs.get(path)
        else:
            value = job.stages[stage].outputs.get(path) if stage in job.stages else None
        if value is None or value.WhichOneof("kind") != "artifact":
            raise NotFound(f"job {job_id!r} has no artifact {stage}/{path}")
        return self._artifacts.get(value.artifact), value.artifact.media_type

    def follow_events(self, job_id: str) -> AsyncIterator[bytes]:
        """The job's CloudEvents: history, then live ones until the terminal event or a long silence.
        Checks that the job exists now (NotFound), so a server can answer 404 before it streams."""
        self.get(job_id)
        return self._store.follow_events(job_id, self._settings.events_idle_timeout_s)

    def _existing(self, job_id: str, idempotency_key: str) -> jobs_pb2.Job:
        job = self._store.get_job(job_id)
        if job is None:  # the first submit with this key has claimed it but not stored its job yet
            raise SubmitInProgress(f"a submit with Idempotency-Key {idempotency_key!r} is in progress")
        return job

    def _queued_job(
        self, job_id: str, pipeline: Pipeline, values: Mapping[str, Any], idempotency_key: str
    ) -> jobs_pb2.Job:
        job = jobs_pb2.Job(
            job_id=job_id,
            pipeline=pipeline.name,
            status=jobs_pb2.JOB_STATUS_QUEUED,
            created_unix_ms=int(self._clock() * 1000),
            idempotency_key=idempotency_key,
        )
        for name, value in values.items():
            if isinstance(value, MediaUpload):
                key = job_artifact_key(job_id, INPUTS_STAGE, name)
                job.inputs[name].artifact.CopyFrom(self._artifacts.put(key, value.data, value.media_type))
            else:
                job.inputs[name].CopyFrom(codec.to_value(value))
        codec.replace_map(job.stages, pipeline.pending_stages())
        return job

    def _produce(self, job_id: str, command: jobs_pb2.JobCommand) -> None:
        """Send a command and wait for the broker to acknowledge this very record."""
        headers = job_headers(job_id, content_type=codec.PROTOBUF_CONTENT_TYPE)
        try:
            self._producer.send_acknowledged(
                self._topics.jobs,
                job_id,
                command.SerializeToString(),
                headers,
                self._settings.submit_ack_timeout_s,
            )
        except BusError as exc:
            log.warning("producing to %s: %s", self._topics.jobs, exc)
            raise BrokerUnavailable(f"the job could not be queued: {exc}") from exc
