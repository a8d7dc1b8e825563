"""The job service behind REST and gRPC: authentication, submit, list, get, cancel, artifacts, events and
the pipeline list. Every job belongs to the tenant whose key submitted it; every operation on a job takes
the caller's tenant and answers NotFound for another tenant's job, as for one that does not exist."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import redis
from orate.v1 import jobs_pb2

from orchestrator import codec, metrics
from orchestrator.chunks import CHUNKS_DIR, chunk_output
from orchestrator.errors import (
    BrokerUnavailable,
    InvalidParameter,
    NotFound,
    QuotaExceededError,
    SubmitInProgress,
    Unauthenticated,
    UnknownPipeline,
)
from orchestrator.inputs import MediaUpload, check_inputs
from orchestrator.pipelines import Pipeline
from orchestrator.settings import ApiSettings
from orchestrator.transitions import is_terminal
from shared.artifacts import ArtifactStore, job_artifact_key
from shared.bus import BusError, Producer, Topics, job_headers
from shared.store import MAX_CREATED_UNIX_MS, JobQuery, JobStore
from shared.tenants import DEV_TENANT, QuotaExceeded, Tenants

log = logging.getLogger(__name__)

INPUTS_STAGE = "_inputs"
API_KEY_HEADER = "X-API-Key"
DEFAULT_PAGE = 20
MAX_PAGE = 100


def _presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The API key a request presents: `Authorization: Bearer <key>` (which wins), else `X-API-Key`; None
    when it presents none. Unauthenticated for an Authorization header of another scheme or none."""
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must read `Bearer <API key>`", invalid_key=True)
        return token.strip()
    return api_key or None


class JobService:
    def __init__(
        self,
        pipelines: Mapping[str, Pipeline],
        store: JobStore,
        producer: Producer,
        artifacts: ArtifactStore,
        topics: Topics,
        settings: ApiSettings,
        tenants: Tenants,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pipelines = pipelines
        self._store = store
        self._producer = producer
        self._artifacts = artifacts
        self._topics = topics
        self._settings = settings
        self._tenants = tenants
        self._clock = clock
        self._tenant_label = metrics.TenantLabels(settings.tenant_metric_labels)

    def authenticate(self, authorization: str | None, api_key: str | None) -> str:
        """The caller's tenant, from the key its Authorization (`Bearer <key>`) or X-API-Key header (or
        gRPC metadata) presents; without a key DEV_TENANT in open mode, else Unauthenticated. A key that is
        not valid is Unauthenticated in either mode."""
        key = _presented_key(authorization, api_key)
        if key is None:
            if self._settings.auth == "open":
                return DEV_TENANT
            raise Unauthenticated(
                f"an API key is required: `Authorization: Bearer <key>` or `{API_KEY_HEADER}: <key>`",
                invalid_key=False,
            )
        tenant = self._tenants.authenticate(key)
        if tenant is None:
            raise Unauthenticated("the API key is unknown, revoked or malformed", invalid_key=True)
        return tenant

    def pipelines(self) -> list[Pipeline]:
        return sorted(self._pipelines.values(), key=lambda pipeline: pipeline.name)

    def submit(
        self, tenant: str, pipeline_name: str, inputs: Mapping[str, Any], idempotency_key: str = ""
    ) -> tuple[jobs_pb2.Job, bool]:
        """The queued job and whether this call created it (False: the idempotency key's earlier job).
        Returns only once the broker has acknowledged the SubmitJob command. The submit is charged to the
        tenant's quotas (QuotaExceededError) once it is valid and not a replay, and refunded if the job
        cannot be queued."""
        pipeline = self._pipelines.get(pipeline_name)
        if pipeline is None:
            raise UnknownPipeline(
                f"unknown pipeline {pipeline_name!r} (known: {', '.join(sorted(self._pipelines))})"
            )
        values = check_inputs(pipeline, inputs, self._settings.max_audio_seconds)
        job_id = uuid.uuid4().hex
        # Keys are the tenant's own: another tenant's key of the same name is another key.
        scoped_key = f"{tenant}:{idempotency_key}" if idempotency_key else ""
        if scoped_key:
            existing = self._store.claim_idempotency_key(scoped_key, job_id)
            if existing is not None:
                return self._existing(existing, idempotency_key), False
        upload_bytes = sum(len(v.data) for v in values.values() if isinstance(v, MediaUpload))
        admitted_at = self._clock()
        admitted = False
        try:
            self._admit(tenant, job_id, upload_bytes, admitted_at)
            admitted = True
            job = self._queued_job(tenant, job_id, pipeline, values, idempotency_key)
            self._store.put_job(job, scoped_key)
            self._produce(job_id, jobs_pb2.JobCommand(submit=jobs_pb2.SubmitJob(job=job)))
        except Exception:
            # Not accepted: refund the quotas and free the key so that the client's retry submits afresh.
            try:
                if admitted:
                    self._tenants.release(tenant, job_id, upload_bytes, admitted_at)
                if scoped_key:
                    self._store.release_idempotency_key(scoped_key, job_id)
            except redis.RedisError as exc:  # the submit's own error is the one to answer with
                log.warning("job %s: undoing a submit that failed: %s", job_id, exc)
            raise
        metrics.JOBS_SUBMITTED.labels(job.pipeline).inc()
        metrics.TENANT_JOBS_SUBMITTED.labels(self._tenant_label(tenant), job.pipeline).inc()
        return job, True

    def list_jobs(self, tenant: str, query: JobQuery) -> tuple[list[jobs_pb2.Job], str]:
        """A page of the tenant's jobs, newest first, and the next page's cursor ("" after the last)."""
        if not 1 <= query.limit <= MAX_PAGE:
            raise InvalidParameter(f"limit: must be 1-{MAX_PAGE}")
        for name in ("created_after_unix_ms", "created_before_unix_ms"):
            bound = getattr(query, name)
            if bound is not None and not 0 <= bound <= MAX_CREATED_UNIX_MS:
                raise InvalidParameter(f"{name}: must be a time in unix ms, 0-{MAX_CREATED_UNIX_MS}")
        try:
            return self._store.list_jobs(tenant, query)
        except ValueError as exc:  # a cursor that is not one
            raise InvalidParameter(f"cursor: {exc}") from exc

    def get(self, job_id: str, tenant: str) -> jobs_pb2.Job:
        job = self._store.get_job(job_id)
        if job is None or job.tenant != tenant:
            raise NotFound(f"no job {job_id!r}")
        return job

    def cancel(self, job_id: str, tenant: str, reason: str = "") -> jobs_pb2.Job:
        """Ask the engine to cancel; the job as it stands (a finished job is left alone)."""
        job = self.get(job_id, tenant)
        if not is_terminal(job):
            self._produce(
                job_id, jobs_pb2.JobCommand(cancel=jobs_pb2.CancelJob(job_id=job_id, reason=reason))
            )
        return job

    def artifact(self, job_id: str, tenant: str, stage: str, path: str) -> tuple[bytes, str]:
        """An input (stage `_inputs`), stage output or streamed chunk (`chunks/<attempt>/<sequence>/<field>`)
        artifact: its bytes and media type. Artifacts are reached only through their job, so the job's
        tenant check covers them."""
        job = self.get(job_id, tenant)
        if stage == INPUTS_STAGE:
            value = job.inputs.get(path)
        elif stage in job.stages and path.startswith(f"{CHUNKS_DIR}/"):
            value = chunk_output(self._store.event_history(job_id), job_id, stage, path)
        else:
            value = job.stages[stage].outputs.get(path) if stage in job.stages else None
        if value is None or value.WhichOneof("kind") != "artifact":
            raise NotFound(f"job {job_id!r} has no artifact {stage}/{path}")
        return self._artifacts.get(value.artifact), value.artifact.media_type

    def follow_events(self, job_id: str, tenant: str) -> AsyncIterator[bytes]:
        """The job's CloudEvents: history, then live ones until the terminal event or a long silence.
        Checks that the job exists now (NotFound), so a server can answer 404 before it streams."""
        self.get(job_id, tenant)
        return self._store.follow_events(job_id, self._settings.events_idle_timeout_s)

    def _admit(self, tenant: str, job_id: str, upload_bytes: int, now: float) -> None:
        try:
            self._tenants.admit(tenant, job_id, upload_bytes, now)
        except QuotaExceeded as exc:
            metrics.TENANT_QUOTA_REJECTIONS.labels(self._tenant_label(tenant), exc.quota).inc()
            raise QuotaExceededError(str(exc), exc.retry_after_s) from exc

    def _existing(self, job_id: str, idempotency_key: str) -> jobs_pb2.Job:
        job = self._store.get_job(job_id)
        if job is None:  # the first submit with this key has claimed it but not stored its job yet
            raise SubmitInProgress(f"a submit with Idempotency-Key {idempotency_key!r} is in progress")
        return job

    def _queued_job(
        self, tenant: str, job_id: str, pipeline: Pipeline, values: Mapping[str, Any], idempotency_key: str
    ) -> jobs_pb2.Job:
        job = jobs_pb2.Job(
            job_id=job_id,
            pipeline=pipeline.name,
            status=jobs_pb2.JOB_STATUS_QUEUED,
            created_unix_ms=int(self._clock() * 1000),
            idempotency_key=idempotency_key,
            tenant=tenant,
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
