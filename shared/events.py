"""CloudEvents 1.0 envelopes (structured JSON mode) for job lifecycle events."""

from __future__ import annotations

from orate.v1 import jobs_pb2

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
EVENT_SOURCE = "/orate/orchestrator"

# Event types, in the order a successful job emits them.
JOB_ACCEPTED = "orate.job.accepted"
STAGE_STARTED = "orate.stage.started"
STAGE_RETRYING = "orate.stage.retrying"
STAGE_COMPLETED = "orate.stage.completed"
STAGE_FAILED = "orate.stage.failed"
JOB_COMPLETED = "orate.job.completed"
JOB_FAILED = "orate.job.failed"
JOB_CANCELLED = "orate.job.cancelled"
TERMINAL_TYPES = frozenset({JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED})


def event_id(event: jobs_pb2.JobEvent) -> str:
    """Deterministic id: <job>:<type>:<stage>:<attempt>, so consumers can drop replayed duplicates."""


def to_cloudevent(event: jobs_pb2.JobEvent) -> bytes:
    """Structured-mode CloudEvent JSON: specversion, id, source, type, subject (job id), time,
    datacontenttype application/json, data = the JobEvent as JSON (proto field names)."""


def from_cloudevent(data: bytes) -> dict:
    """Parse and check a structured CloudEvent; raise ValueError if it is not one."""
