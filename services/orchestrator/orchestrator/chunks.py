"""A streaming stage's chunks, forwarded as the model yields them: each chunk's bytes fields are stored as
artifacts, then an orate.stage.chunk CloudEvent goes to orate.events, keyed by job id and acknowledged
before the next chunk is taken (so the topic holds them in order), and into the job's event history,
which the REST and gRPC event streams follow."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator

from google.protobuf.message import Message
from orate.v1 import common_pb2, jobs_pb2

from orchestrator import codec, metrics
from shared import events
from shared.artifacts import ArtifactStore, job_artifact_key
from shared.bus import Producer, Topics, job_headers
from shared.serving.clients import ModelUnavailable, StreamedPart
from shared.store import JobStore

# How long a chunk's event may wait for the broker's acknowledgement before the attempt fails (retryable).
CHUNK_ACK_TIMEOUT_S = 10.0
# Chunk artifacts sit in this folder under their stage's artifacts.
CHUNKS_DIR = "chunks"


def chunk_artifact_name(attempt: int, sequence: int, path: str) -> str:
    """A chunk's artifact under its stage: chunks/<attempt>/<sequence>/<field path>, so a retried attempt's
    chunks never overwrite an earlier attempt's, and a replayed one's rewrite the same bytes. The API serves
    it at /v1/jobs/<job>/artifacts/<stage>/<this name>."""
    return f"{CHUNKS_DIR}/{attempt}/{sequence}/{path}"


def chunk_output(history: list[bytes], job_id: str, stage: str, name: str) -> common_pb2.Value | None:
    """The output a chunk artifact name (chunk_artifact_name) points at, as the chunk's event in the
    job's event history names it; None if no such chunk was announced."""
    parts = name.split("/", 3)
    if len(parts) != 4 or parts[0] != CHUNKS_DIR:
        return None
    _, attempt, sequence, path = parts
    wanted = f"{job_id}:{events.STAGE_CHUNK}:{stage}:{attempt}:{sequence}"
    for data in history:
        envelope = events.from_cloudevent(data)
        if envelope["id"] == wanted:
            return events.to_job_event(envelope).outputs.get(path)
    return None


class ChunkForwarder:
    """Forwards the chunks of one streaming service's stages (a runner's), one stream per call."""

    def __init__(
        self,
        service: str,
        chunk_type: type[Message],
        producer: Producer,
        store: JobStore,
        artifacts: ArtifactStore,
        topics: Topics,
        clock: Callable[[], float],
    ) -> None:
        self._service = service
        self._chunk_type = chunk_type
        self._producer = producer
        self._store = store
        self._artifacts = artifacts
        self._topics = topics
        self._clock = clock

    def forward(
        self,
        parts: Generator[StreamedPart, None, None],
        work: jobs_pb2.StageWork,
        job: jobs_pb2.Job | None,
        traceparent: str | None,
    ) -> bytes:
        """Publish each chunk as it arrives; returns the serialized response that ends the stream. An
        error (the model's, the broker's, a chunk that does not decode) propagates after the chunks before
        it were published, and closing the stream cancels the model's call."""
        # The model's call starts with the stream's first step, just after this.
        started = time.monotonic()
        with contextlib.closing(parts):
            for sequence, (final, payload) in enumerate(parts):
                if final:
                    return payload
                if sequence == 0:
                    metrics.MODEL_FIRST_CHUNK_DURATION.labels(self._service).observe(
                        time.monotonic() - started
                    )
                self._publish(work, job, sequence, self._chunk_type.FromString(payload), traceparent)
        raise ModelUnavailable("the stream ended without its response")

    def _publish(
        self,
        work: jobs_pb2.StageWork,
        job: jobs_pb2.Job | None,
        sequence: int,
        chunk: Message,
        traceparent: str | None,
    ) -> None:
        blobs, json_chunk = codec.split_response(chunk)
        event = jobs_pb2.JobEvent(
            job_id=work.job_id,
            type=events.STAGE_CHUNK,
            # The runner reads the job at pickup; one missing there (its record expired) still streams.
            pipeline=job.pipeline if job else "",
            tenant=job.tenant if job else "",
            stage=work.stage,
            attempt=work.attempt,
            status=jobs_pb2.JOB_STATUS_RUNNING,
            sequence=sequence,
            time_unix_ms=int(self._clock() * 1000),
        )
        for blob in blobs:
            name = chunk_artifact_name(work.attempt, sequence, blob.path)
            key = job_artifact_key(work.job_id, work.stage, name)
            event.outputs[blob.path].CopyFrom(
                common_pb2.Value(artifact=self._artifacts.put(key, blob.data, blob.media_type))
            )
        event.outputs[codec.RESPONSE].CopyFrom(codec.to_value(json_chunk))
        cloudevent = events.to_cloudevent(event)
        headers = job_headers(work.job_id, traceparent, events.CLOUDEVENTS_CONTENT_TYPE)
        # Kafka first, then the history, as the engine does with its events.
        self._producer.send_acknowledged(
            self._topics.events, work.job_id, cloudevent, headers, CHUNK_ACK_TIMEOUT_S
        )
        self._store.write([], [(work.job_id, cloudevent)])
