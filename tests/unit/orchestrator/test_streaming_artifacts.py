"""A streamed chunk's artifact through the job service: found at the path its event names, only for the
job's tenant, and only once the chunk was announced."""

from __future__ import annotations

import pytest
from orate.v1 import common_pb2, jobs_pb2
from orchestrator.chunks import ChunkForwarder, chunk_artifact_name
from orchestrator.errors import NotFound
from orchestrator.jobs import JobService
from orchestrator.settings import ApiSettings
from orchestrator_fakes import FakeProducer, FakeStore, FakeTenants, MemoryArtifacts

from shared.bus import Topics

TOPICS = Topics("t")


@pytest.fixture
def service(producer: FakeProducer, store: FakeStore, artifacts: MemoryArtifacts) -> JobService:
    job = jobs_pb2.Job(job_id="j1", pipeline="p", tenant="acme", status=jobs_pb2.JOB_STATUS_RUNNING)
    job.stages["speak"].CopyFrom(jobs_pb2.StageState(name="speak", attempt=1))
    store.put_job(job)
    forwarder = ChunkForwarder("speaker", common_pb2.Audio, producer, store, artifacts, TOPICS, lambda: 1.0)
    work = jobs_pb2.StageWork(job_id="j1", stage="speak", attempt=1)
    chunk = common_pb2.Audio(data=b"first", media_type="audio/wav").SerializeToString()
    parts = (part for part in [(False, chunk), (True, b"")])
    assert forwarder.forward(parts, work, job, None) == b""
    return JobService({}, store, producer, artifacts, TOPICS, ApiSettings(), FakeTenants())


def test_a_chunk_artifact_is_served_at_the_path_its_event_names(service: JobService) -> None:
    data, media_type = service.artifact("j1", "acme", "speak", chunk_artifact_name(1, 0, "data"))
    assert (data, media_type) == (b"first", "audio/wav")


@pytest.mark.parametrize(
    ("tenant", "stage", "name"),
    [
        ("other", "speak", chunk_artifact_name(1, 0, "data")),  # another tenant's job
        ("acme", "speak", chunk_artifact_name(1, 1, "data")),  # a chunk never announced
        ("acme", "speak", chunk_artifact_name(2, 0, "data")),  # an attempt that never streamed
        ("acme", "speak", chunk_artifact_name(1, 0, "media_type")),  # not an artifact of the chunk
        ("acme", "speak", "chunks/1/0"),  # not a chunk artifact name
        ("acme", "listen", chunk_artifact_name(1, 0, "data")),  # no such stage
    ],
)
def test_anything_else_is_not_found(service: JobService, tenant: str, stage: str, name: str) -> None:
    with pytest.raises(NotFound):
        service.artifact("j1", tenant, stage, name)
