"""CloudEvent envelopes of job events: required attributes, deterministic ids, JSON data."""

from __future__ import annotations

import json

import pytest
from orate.v1 import common_pb2, jobs_pb2

from shared import events


def _stage_completed(time_unix_ms: int = 1_764_000_000_123) -> jobs_pb2.JobEvent:
    event = jobs_pb2.JobEvent(
        job_id="job-42",
        type=events.STAGE_COMPLETED,
        pipeline="transcribe",
        stage="asr",
        attempt=2,
        status=jobs_pb2.JOB_STATUS_RUNNING,
        time_unix_ms=time_unix_ms,
    )
    event.outputs["audio.data"].artifact.CopyFrom(
        common_pb2.ArtifactRef(uri="file:///tmp/a.wav", media_type="audio/wav", size_bytes=10, sha256="ab")
    )
    return event


def test_structured_cloudevent_has_required_attributes_and_proto_field_names() -> None:
    envelope = json.loads(events.to_cloudevent(_stage_completed()))

    assert envelope["specversion"] == "1.0"
    assert envelope["id"] == "job-42:orate.stage.completed:asr:2"
    assert envelope["source"] == events.EVENT_SOURCE
    assert envelope["type"] == "orate.stage.completed"
    assert envelope["subject"] == "job-42"
    assert envelope["time"] == "2025-11-24T16:00:00.123Z"
    assert envelope["datacontenttype"] == "application/json"
    data = envelope["data"]
    assert data["job_id"] == "job-42" and data["stage"] == "asr" and data["attempt"] == 2
    assert data["status"] == "JOB_STATUS_RUNNING"
    assert data["outputs"]["audio.data"]["artifact"]["media_type"] == "audio/wav"
    assert events.CLOUDEVENTS_CONTENT_TYPE == "application/cloudevents+json"


def test_ids_are_deterministic_and_replays_are_byte_identical() -> None:
    assert events.to_cloudevent(_stage_completed()) == events.to_cloudevent(_stage_completed())
    accepted = jobs_pb2.JobEvent(job_id="j", type=events.JOB_ACCEPTED)
    assert events.event_id(accepted) == "j:orate.job.accepted::0"
    assert events.event_id(_stage_completed()) != events.event_id(accepted)


def test_round_trip_to_job_event() -> None:
    original = _stage_completed()
    envelope = events.from_cloudevent(events.to_cloudevent(original))
    assert events.to_job_event(envelope) == original
    assert events.to_job_event(events.to_cloudevent(original)) == original


def test_unset_time_is_filled_in() -> None:
    envelope = json.loads(events.to_cloudevent(_stage_completed(time_unix_ms=0)))
    assert envelope["time"].endswith("Z") and not envelope["time"].startswith("1970")


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"specversion": "1.0", "id": "x", "source": "/s"}).encode(),
        json.dumps({"specversion": "0.3", "id": "x", "source": "/s", "type": "t"}).encode(),
        json.dumps({"specversion": "1.0", "id": "", "source": "/s", "type": "t"}).encode(),
    ],
)
def test_from_cloudevent_rejects_what_is_not_a_cloudevent(raw: bytes) -> None:
    with pytest.raises(ValueError):
        events.from_cloudevent(raw)


def test_event_without_job_id_is_refused() -> None:
    with pytest.raises(ValueError):
        events.to_cloudevent(jobs_pb2.JobEvent(type=events.JOB_ACCEPTED))
