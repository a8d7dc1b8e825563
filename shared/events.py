"""CloudEvents 1.0 envelopes (structured JSON mode) for job lifecycle events."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from orate.v1 import jobs_pb2

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
EVENT_SOURCE = "/orate/orchestrator"
SPEC_VERSION = "1.0"
DATA_CONTENT_TYPE = "application/json"

# Event types, in the order a successful job emits them.
JOB_ACCEPTED = "orate.job.accepted"
STAGE_STARTED = "orate.stage.started"
# A streaming stage's partial output, sent by its runner as the model yields it (sequence 0, 1, 2...).
STAGE_CHUNK = "orate.stage.chunk"
STAGE_RETRYING = "orate.stage.retrying"
STAGE_COMPLETED = "orate.stage.completed"
STAGE_FAILED = "orate.stage.failed"
JOB_COMPLETED = "orate.job.completed"
JOB_FAILED = "orate.job.failed"
JOB_CANCELLED = "orate.job.cancelled"
TERMINAL_TYPES = frozenset({JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED})

_REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
# The extension attribute naming the job's tenant (CloudEvents names: lowercase letters and digits), so a
# consumer can route or filter events by tenant without parsing their data.
TENANT_ATTRIBUTE = "tenant"


def event_id(event: jobs_pb2.JobEvent) -> str:
    """Deterministic id: <job>:<type>:<stage>:<attempt> (a chunk's with :<sequence> after it), so consumers
    can drop replayed duplicates."""
    identity = f"{event.job_id}:{event.type}:{event.stage}:{event.attempt}"
    return f"{identity}:{event.sequence}" if event.type == STAGE_CHUNK else identity


def _rfc3339(unix_ms: int) -> str:
    moment = datetime.fromtimestamp(unix_ms / 1000.0, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_cloudevent(event: jobs_pb2.JobEvent) -> bytes:
    """Structured-mode CloudEvent JSON: specversion, id, source, type, subject (job id), time,
    datacontenttype application/json, the extension `tenant` (when the event has one), data = the JobEvent
    as JSON (proto field names)."""
    if not event.job_id or not event.type:
        raise ValueError("a job event needs job_id and type")
    # The event's own time keeps a replayed event byte-identical; an unset time means "now".
    unix_ms = event.time_unix_ms or int(time.time() * 1000)
    envelope = {
        "specversion": SPEC_VERSION,
        "id": event_id(event),
        "source": EVENT_SOURCE,
        "type": event.type,
        "subject": event.job_id,
        "time": _rfc3339(unix_ms),
        "datacontenttype": DATA_CONTENT_TYPE,
        **({TENANT_ATTRIBUTE: event.tenant} if event.tenant else {}),
        "data": json_format.MessageToDict(event, preserving_proto_field_name=True),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def from_cloudevent(data: bytes) -> dict[str, Any]:
    """Parse and check a structured CloudEvent; raise ValueError if it is not one."""
    try:
        envelope = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"not a CloudEvent: invalid JSON ({exc})") from exc
    if not isinstance(envelope, dict):
        raise ValueError("not a CloudEvent: the JSON is not an object")
    for name in _REQUIRED_ATTRIBUTES:
        value = envelope.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"not a CloudEvent: attribute {name!r} is missing or not a string")
    if envelope["specversion"] != SPEC_VERSION:
        raise ValueError(f"unsupported CloudEvents specversion {envelope['specversion']!r}")
    return envelope


def to_job_event(data: bytes | dict[str, Any]) -> jobs_pb2.JobEvent:
    """The JobEvent carried by a CloudEvent (raw JSON or an envelope from_cloudevent returned)."""
    envelope = from_cloudevent(data) if isinstance(data, bytes | bytearray) else data
    payload = envelope.get("data")
    if not isinstance(payload, dict):
        raise ValueError("the CloudEvent carries no JobEvent data")
    try:
        return json_format.ParseDict(payload, jobs_pb2.JobEvent(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ValueError(f"the CloudEvent data is not a JobEvent: {exc}") from exc
