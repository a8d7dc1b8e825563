"""Kafka bus on confluent-kafka: idempotent producer (acks=all), consumer groups that commit after
processing in small batches, per-job keys, and headers carrying the job id and trace context."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka import Consumer as _KafkaConsumer
from confluent_kafka import Producer as _KafkaProducer
from confluent_kafka.admin import AdminClient, NewTopic

from shared.settings import KafkaSettings

JOB_ID_HEADER = "orate-job-id"
TRACEPARENT_HEADER = "traceparent"
CONTENT_TYPE_HEADER = "content-type"

# Small enough to add little latency, large enough to batch a burst of records.
_LINGER_MS = 1
# Errors that mean this member lost its partitions (rebalance): the new owner re-reads from the
# last committed offset, so the uncommitted offsets are dropped rather than treated as fatal.
_REBALANCE_ERRORS = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._ASSIGNMENT_LOST,
    }
)

log = logging.getLogger(__name__)


class BusError(RuntimeError):
    """A record could not be produced or consumed."""


@dataclass(frozen=True)
class Topics:
    """Topic names derived from the configured prefix."""

    prefix: str = "orate"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}.jobs"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    def work(self, service: str) -> str:
        return f"{self.prefix}.work.{service}"


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    timestamp_ms: int = 0


def _log_client_error(error: KafkaError) -> None:
    # librdkafka reconnects by itself; these are reported for operators, not raised.
    log.warning("kafka client error: %s", error)


def _log_commit_failure(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
    # Reports asynchronous commits; a failed one is harmless (the records are replayed) but worth seeing.
    if error is not None and error.code() != KafkaError._NO_OFFSET:
        log.warning("offset commit failed (records will be replayed): %s", error)


def ensure_topics(settings: KafkaSettings, topics: list[str], timeout_s: float = 10.0) -> None:
    """Create the topics with settings.partitions partitions; existing topics are left alone."""
    if not topics:
        return
    admin = AdminClient(
        {"bootstrap.servers": settings.bootstrap_servers, "error_cb": _log_client_error, "logger": log}
    )
    # Replication factor -1 takes the broker's default, which is right for tansu and for real Kafka.
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=settings.partitions) for name in dict.fromkeys(topics)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    failures = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                failures.append(f"{name}: {exc.args[0].str()}")
        except Exception as exc:  # a timeout surfaces as concurrent.futures.TimeoutError
            failures.append(f"{name}: {exc!r}")
    if failures:
        raise BusError("could not create topics: " + "; ".join(failures))


def end_offsets(settings: KafkaSettings, timeout_s: float = 5.0) -> dict[tuple[str, int], int]:
    """(topic, partition) -> end offset of every partition of the topics under settings.topic_prefix.
    On tansu 0.6 the end offset is the last batch's base offset + 1: at least the number of batches the
    partition holds, and those are what slow it down."""
    consumer = _KafkaConsumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"orate-offsets-{secrets.token_hex(4)}",  # required, never joined
            "error_cb": _log_client_error,
            "logger": log,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        offsets = {}
        for name, topic in metadata.topics.items():
            if not name.startswith(f"{settings.topic_prefix}."):
                continue
            for partition in topic.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=timeout_s)
                offsets[(name, partition)] = high
        return offsets
    except KafkaException as exc:
        raise BusError(f"cannot read end offsets: {exc.args[0].str()}") from exc
    finally:
        consumer.close()


def new_traceparent() -> str:
    """A fresh W3C traceparent header value."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def job_headers(
    job_id: str, traceparent: str | None = None, content_type: str | None = None
) -> dict[str, str]:
    """Headers for a record about a job: job id, trace context (new unless given), content type."""
    headers = {JOB_ID_HEADER: job_id, TRACEPARENT_HEADER: traceparent or new_traceparent()}
    if content_type:
        headers[CONTENT_TYPE_HEADER] = content_type
    return headers


class Producer:
    """Idempotent producer (enable.idempotence, acks=all), small linger for latency."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._producer = _KafkaProducer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "client.id": client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": _LINGER_MS,
                "error_cb": _log_client_error,
                "logger": log,
            }
        )
        # Failures since the last flush(), so flush() can report records that were never acknowledged.
        self._failures: list[str] = []
        self._closed = False

    def send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: dict[str, str] | None = None,
        on_delivery: Callable[[Exception | None], None] | None = None,
    ) -> None:
        """Queue a record; on_delivery (if given) is called from poll()/flush() with None or the error."""

        def delivered(error: KafkaError | None, message: Message) -> None:
            failure = None
            if error is not None:
                failure = BusError(f"delivery to {message.topic()} failed: {error.str()}")
                self._failures.append(str(failure))
            if on_delivery is not None:
                on_delivery(failure)

        header_list = [(name, text.encode()) for name, text in (headers or {}).items()]
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key.encode(), headers=header_list, on_delivery=delivered
                )
                break
            except BufferError:
                # The local queue is full: serve delivery reports to make room, then retry.
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise BusError(f"cannot produce to {topic}: {exc.args[0].str()}") from exc
        self._producer.poll(0)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve pending delivery callbacks without waiting for the whole queue."""
        self._producer.poll(timeout_s)

    def send_acknowledged(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """Send one record and wait for its own acknowledgement (not the whole queue's, as flush() does,
        which makes concurrent callers wait for each other); BusError if it fails or times out."""
        acknowledged = threading.Event()
        errors: list[Exception] = []

        def delivered(error: Exception | None) -> None:
            if error is not None:
                errors.append(error)
            acknowledged.set()

        self.send(topic, key, value, headers, delivered)
        deadline = time.monotonic() + timeout_s
        # Any thread's poll() serves any record's report; each caller waits for its own.
        while not acknowledged.is_set() and time.monotonic() < deadline:
            self._producer.poll(0.002)
        if not acknowledged.is_set():
            raise BusError(f"record to {topic} not acknowledged after {timeout_s:g} s")
        if errors:
            raise errors[0]

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued record is acknowledged; raise BusError if any failed or timed out."""
        remaining = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        if remaining:
            raise BusError(f"{remaining} records not acknowledged after {timeout_s:g} s")
        if failures:
            raise BusError(f"{len(failures)} records failed; first: {failures[0]}")

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait up to timeout_s for queued records, then drop (and log) what is still unacknowledged."""
        if self._closed:
            return
        self._closed = True
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.warning("producer closed with %d unacknowledged records", remaining)
            self._producer.purge()
            self._producer.flush(0)


class Consumer:
    """A consumer-group member with manual commits: call processed(record) after handling a record;
    offsets are committed every commit_every records or commit_interval_ms, whichever comes first."""

    def __init__(self, settings: KafkaSettings, group_id: str, topics: list[str], client_id: str) -> None:
        self._settings = settings
        self._consumer = _KafkaConsumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": group_id,
                "client.id": client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": settings.fetch_wait_max_ms,
                "session.timeout.ms": settings.session_timeout_ms,
                "heartbeat.interval.ms": settings.heartbeat_interval_ms,
                "error_cb": _log_client_error,
                "logger": log,
                "on_commit": _log_commit_failure,
            }
        )
        # (topic, partition) -> next offset to commit (last processed + 1), not yet committed.
        self._pending: dict[tuple[str, int], int] = {}
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        self._closed = False
        self._consumer.subscribe(topics, on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _on_revoke(self, consumer: _KafkaConsumer, partitions: list[TopicPartition]) -> None:
        # Hand the partitions over with everything processed so far committed, so the next owner
        # replays as little as possible.
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        offsets = {tp: offset for tp, offset in self._pending.items() if tp in revoked}
        for tp in revoked:
            self._pending.pop(tp, None)
        if offsets:
            self._commit_offsets(offsets, asynchronous=False)

    def _on_lost(self, consumer: _KafkaConsumer, partitions: list[TopicPartition]) -> None:
        # Another member owns them already; committing would be rejected.
        for tp in partitions:
            self._pending.pop((tp.topic, tp.partition), None)

    def poll_batch(self, max_records: int = 100, timeout_s: float = 0.1) -> list[Record]:
        """Up to max_records records (possibly none); errors other than partition EOF raise BusError."""
        self._maybe_commit()
        # consume() waits out its whole timeout unless max_records are there: wait for the first
        # record only, then take whatever else has already arrived without waiting.
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        messages = [first]
        if max_records > 1:
            messages += self._consumer.consume(num_messages=max_records - 1, timeout=0)
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise BusError(f"consume failed: {error.str()}")
            _, timestamp_ms = message.timestamp()
            key = message.key()
            records.append(
                Record(
                    topic=message.topic(),
                    partition=message.partition(),
                    offset=message.offset(),
                    key=key.decode() if key is not None else "",
                    value=message.value() or b"",
                    headers={name: (raw or b"").decode() for name, raw in message.headers() or []},
                    timestamp_ms=max(timestamp_ms, 0),
                )
            )
        return records

    def processed(self, record: Record) -> None:
        """Mark a record (and everything before it on its partition) as done; may commit."""
        self._pending[(record.topic, record.partition)] = record.offset + 1
        self._uncommitted += 1
        self._maybe_commit()

    def _maybe_commit(self) -> None:
        if not self._pending:
            return
        elapsed_ms = (time.monotonic() - self._last_commit) * 1000.0
        settings = self._settings
        if self._uncommitted >= settings.commit_every or elapsed_ms >= settings.commit_interval_ms:
            # Asynchronous: the batch boundary is the only delay; a lost commit only means a replay.
            self._commit_pending(asynchronous=True)

    def commit(self) -> None:
        """Commit the processed offsets now (synchronously)."""
        self._commit_pending(asynchronous=False)

    def _commit_pending(self, asynchronous: bool) -> None:
        offsets, self._pending = self._pending, {}
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        if offsets:
            self._commit_offsets(offsets, asynchronous)

    def _commit_offsets(self, offsets: dict[tuple[str, int], int], asynchronous: bool) -> None:
        partitions = [TopicPartition(topic, part, offset) for (topic, part), offset in offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=asynchronous)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in _REBALANCE_ERRORS:
                log.warning("offsets not committed after a rebalance (records will be replayed): %s", error)
                return
            raise BusError(f"commit failed: {error.str()}") from exc

    def lag(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> high watermark minus committed offset, for the assigned partitions that
        have been fetched.
        On tansu 0.6 the high watermark is a batch's base offset + 1, so this under-reads there."""
        assigned = self._consumer.assignment()
        if not assigned:
            return {}
        try:
            committed = self._consumer.committed(assigned, timeout=5.0)
            lags = {}
            for tp in committed:
                # Cached: the high watermark that the last fetch response carried, no round trip (a
                # partition not fetched yet has none, and is left out).
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    continue
                start = tp.offset if tp.offset != OFFSET_INVALID and tp.offset >= 0 else 0
                lags[(tp.topic, tp.partition)] = max(high - start, 0)
        except KafkaException as exc:
            raise BusError(f"cannot read offsets: {exc.args[0].str()}") from exc
        return lags

    def close(self) -> None:
        """Commit processed offsets and leave the group."""
        if self._closed:
            return
        self._closed = True
        try:
            self.commit()
        finally:
            self._consumer.close()
