"""Kafka bus on confluent-kafka: idempotent producer (acks=all), consumer groups that commit after
processing in small batches, per-job keys, and headers carrying the job id and trace context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.settings import KafkaSettings

JOB_ID_HEADER = "orate-job-id"
TRACEPARENT_HEADER = "traceparent"
CONTENT_TYPE_HEADER = "content-type"


class BusError(RuntimeError):
    """A record could not be produced or consumed."""


@dataclass(frozen=True)
class Topics:
    """Topic names derived from the configured prefix."""

    prefix: str = "orate"

    @property
    def jobs(self) -> str: ...
    @property
    def events(self) -> str: ...
    @property
    def dlq(self) -> str: ...
    def work(self, service: str) -> str: ...


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    timestamp_ms: int = 0


def ensure_topics(settings: KafkaSettings, topics: list[str], timeout_s: float = 10.0) -> None:
    """Create the topics with settings.partitions partitions; existing topics are left alone."""


def new_traceparent() -> str:
    """A fresh W3C traceparent header value."""


def job_headers(job_id: str, traceparent: str | None = None, content_type: str | None = None) -> dict[str, str]:
    """Headers for a record about a job: job id, trace context (new unless given), content type."""


class Producer:
    """Idempotent producer (enable.idempotence, acks=all), small linger for latency."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None: ...

    def send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: dict[str, str] | None = None,
        on_delivery: Callable[[Exception | None], None] | None = None,
    ) -> None:
        """Queue a record; on_delivery (if given) is called from poll()/flush() with None or the error."""

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued record is acknowledged; raise BusError if any failed or timed out."""

    def close(self) -> None: ...


class Consumer:
    """A consumer-group member with manual commits: call processed(record) after handling a record;
    offsets are committed every commit_every records or commit_interval_ms, whichever comes first."""

    def __init__(self, settings: KafkaSettings, group_id: str, topics: list[str], client_id: str) -> None: ...

    def poll_batch(self, max_records: int = 100, timeout_s: float = 0.1) -> list[Record]:
        """Up to max_records records (possibly none); errors other than partition EOF raise BusError."""

    def processed(self, record: Record) -> None:
        """Mark a record (and everything before it on its partition) as done; may commit."""

    def commit(self) -> None:
        """Commit the processed offsets now (synchronously)."""

    def lag(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> high watermark minus committed offset, for the assigned partitions.
        On tansu 0.6 the high watermark is a batch's base offset + 1, so this under-reads there."""

    def close(self) -> None:
        """Commit processed offsets and leave the group."""
