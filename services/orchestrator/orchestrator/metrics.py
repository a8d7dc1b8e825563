"""Prometheus metrics of the API, the engine and the stage runners (units in the names)."""

from __future__ import annotations

import logging
import threading

from orate.v1 import jobs_pb2
from prometheus_client import Counter, Gauge, Histogram

from orchestrator.transitions import Effects
from shared import events
from shared import metrics as shared_metrics
from shared.bus import BusError, Consumer

log = logging.getLogger(__name__)

# The shared buckets stop at 60 s; jobs, stages and model calls run to minutes (diffusion video).
LATENCY_BUCKETS_S = (*shared_metrics.LATENCY_BUCKETS_S, 120.0, 300.0, 600.0)

API_REQUESTS = Counter("orate_api_requests_total", "HTTP API requests", ["route", "method", "status"])
JOBS_SUBMITTED = Counter("orate_jobs_submitted_total", "Jobs accepted by the API", ["pipeline"])
# The tenant label is TenantLabels' (bounded), never a raw tenant name.
TENANT_JOBS_SUBMITTED = Counter(
    "orate_tenant_jobs_submitted_total", "Jobs accepted by the API, per tenant", ["tenant", "pipeline"]
)
TENANT_QUOTA_REJECTIONS = Counter(
    "orate_tenant_quota_rejections_total",
    "Submits refused by a tenant quota (concurrent_jobs, submits_per_minute, bytes_per_day)",
    ["tenant", "quota"],
)
JOBS_FINISHED = Counter(
    "orate_jobs_finished_total", "Jobs that reached a terminal state", ["pipeline", "status"]
)
JOB_DURATION = Histogram(
    "orate_job_duration_seconds", "Job creation to terminal state", ["pipeline"], buckets=LATENCY_BUCKETS_S
)
STAGE_DURATION = Histogram(
    "orate_stage_duration_seconds",
    "Stage dispatch to result, per attempt",
    ["service", "stage"],
    buckets=LATENCY_BUCKETS_S,
)
MODEL_CALL_DURATION = Histogram(
    "orate_model_call_duration_seconds",
    "Runner's call to the deployment",
    ["service"],
    buckets=LATENCY_BUCKETS_S,
)
MODEL_FIRST_CHUNK_DURATION = Histogram(
    "orate_model_first_chunk_seconds",
    "Runner's call to a streaming deployment until its first chunk arrived",
    ["service"],
    buckets=LATENCY_BUCKETS_S,
)
STAGE_RETRIES = Counter("orate_stage_retries_total", "Stage attempts scheduled after a failure", ["service"])
STAGE_DEADLINES_EXPIRED = Counter(
    "orate_stage_deadlines_expired_total",
    "Stage attempts failed by an engine deadline (schedule_to_start, heartbeat, start_to_close)",
    ["service", "kind"],
)
SUBMITS_RESENT = Counter(
    "orate_submits_resent_total",
    "SubmitJob commands the engine produced again for jobs still queued (a submit the broker lost)",
    ["pipeline"],
)
DLQ_RECORDS = Counter(
    "orate_dlq_records_total", "Records sent to the dead-letter topic", ["service", "reason_kind"]
)
CONSUMER_LAG = Gauge(
    "orate_consumer_lag_records",
    "High watermark minus committed offset",
    ["group", "topic", "partition"],
)

TERMINAL_STATUS_LABELS = {
    events.JOB_COMPLETED: "succeeded",
    events.JOB_FAILED: "failed",
    events.JOB_CANCELLED: "cancelled",
}


class TenantLabels:
    """The tenant label value of a tenant: its name for the first `limit` distinct tenants this process
    sees, `_other` for every later one, so that per-tenant series stay bounded however many tenants call.
    Which tenants are named depends on the order each process meets them: sum over `tenant` across
    processes, or look at a tenant's `other` series as well, when it may not be among a process's first."""

    OTHER = "_other"  # no tenant can be called this (TENANT_PATTERN starts with a letter or digit)

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._named: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, tenant: str) -> str:
        if tenant in self._named:
            return tenant
        with self._lock:
            if len(self._named) < self._limit:
                self._named.add(tenant)
                return tenant
        return self.OTHER


def observe_effects(job: jobs_pb2.Job, effects: Effects) -> None:
    """Count what one applied engine command did."""
    for timing in effects.stage_timings:
        STAGE_DURATION.labels(timing.service, timing.stage).observe(timing.seconds)
    for event in effects.events:
        if event.type == events.STAGE_RETRYING:
            STAGE_RETRIES.labels(job.stages[event.stage].service).inc()
        elif event.type in TERMINAL_STATUS_LABELS:
            JOBS_FINISHED.labels(job.pipeline, TERMINAL_STATUS_LABELS[event.type]).inc()
            JOB_DURATION.labels(job.pipeline).observe(
                max(0, job.finished_unix_ms - job.created_unix_ms) / 1000
            )
    for dead in effects.dead_letters:
        DLQ_RECORDS.labels(dead.letter.service, dead.kind).inc()
    for expired in effects.expired_deadlines:
        STAGE_DEADLINES_EXPIRED.labels(expired.service, expired.kind).inc()


class LagReporter:
    """Refreshes orate_consumer_lag_records from Consumer.lag() every interval_s, on a thread of its own
    while in use as a context manager: lag() asks the broker, which would stall the consumer's loop."""

    def __init__(self, consumer: Consumer, group: str, interval_s: float = 5.0) -> None:
        self._consumer = consumer
        self._group = group
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lag-{group}", daemon=True)

    def __enter__(self) -> LagReporter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._refresh()
            self._stop.wait(self._interval_s)

    def _refresh(self) -> None:
        try:
            lags = self._consumer.lag()
        except BusError as exc:  # a metric is not worth stopping the consumer for
            log.warning("consumer lag unavailable: %s", exc)
            return
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(self._group, topic, str(partition)).set(lag)
