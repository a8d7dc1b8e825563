"""Kafka bus on confluent-kafka: idempotent producer (acks=all), consumer groups that commit after
processing in small batches, per-job keys, and headers carrying the job id and trace context."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_END, OFFSET_INVALID, KafkaError, KafkaException, Message, TopicPartition
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


def connection_config(settings: KafkaSettings) -> dict[str, str]:
    """The broker address and, for a secured Kafka, its security settings: what every client needs."""
    config = {"bootstrap.servers": settings.bootstrap_servers}
    if settings.security_protocol:
        config["security.protocol"] = settings.security_protocol
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = settings.sasl_password.get_secret_value()
    return config


def _log_client_error(error: KafkaError) -> None:
    # librdkafka reconnects by itself; these are reported for operators, not raised.
    log.warning("kafka client error: %s", error)


def _log_delete_failure(tp: TopicPartition, done: Future) -> None:
    # Harmless: the next round deletes below a later committed offset, retention meanwhile.
    if done.exception() is not None:
        log.warning("records of %s/%d not deleted: %s", tp.topic, tp.partition, done.exception())


def ensure_topics(
    settings: KafkaSettings,
    topics: list[str],
    timeout_s: float = 10.0,
    *,
    configs: dict[str, str] | None = None,
) -> None:
    """Create the topics with settings.partitions partitions and the given topic configs (e.g.
    retention.ms); existing topics are left alone."""
    if not topics:
        return
    admin = AdminClient({**connection_config(settings), "error_cb": _log_client_error, "logger": log})
    # Replication factor -1 takes the broker's default, which is right for noida-db and for real Kafka.
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=settings.partitions, config=dict(configs or {}))
            for name in dict.fromkeys(topics)
        ],
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


def watermarks(settings: KafkaSettings, timeout_s: float = 5.0) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (first offset held, end offset) of every partition of the topics under
    settings.topic_prefix; the difference is the number of records the partition holds."""
    consumer = _KafkaConsumer(
        {
            **connection_config(settings),
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
                tp = TopicPartition(name, partition)
                offsets[(name, partition)] = consumer.get_watermark_offsets(tp, timeout=timeout_s)
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
    """Idempotent producer (enable.idempotence, acks=all), small linger for latency.

    A broker that restarts without its producer state (the embedded broker after a crash) puts an
    idempotent client out of step for good (a fatal error: every later send fails). The next send then
    fails what the old client held, to its senders, and carries on with a new client."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._config = {
            **connection_config(settings),
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": _LINGER_MS,
            "error_cb": self._on_error,
            "logger": log,
        }
        self._producer = _KafkaProducer(self._config)
        self._fatal = threading.Event()
        self._renew_lock = threading.Lock()
        # Failures since the last flush(), so flush() can report records that were never acknowledged.
        self._failures: list[str] = []
        self._closed = False

    def _on_error(self, error: KafkaError) -> None:
        _log_client_error(error)
        if error.fatal():
            self._fatal.set()

    def _fatal_error(self, exc: KafkaException) -> BusError:
        """The BusError for a client call that raised; marks the client for renewal if it is done for."""
        error = exc.args[0]
        if error.fatal():
            self._fatal.set()
            return BusError(f"producer failed for good ({error.str()}); the next send uses a new client")
        return BusError(error.str())

    def _serve(self, timeout_s: float) -> None:
        """Serve delivery reports (poll); BusError once the client has failed for good."""
        try:
            self._producer.poll(timeout_s)
        except KafkaException as exc:
            raise self._fatal_error(exc) from exc

    def _renew_if_fatal(self) -> None:
        with self._renew_lock:
            if not self._fatal.is_set():
                return
            old, self._producer = self._producer, _KafkaProducer(self._config)
            self._fatal.clear()
        log.warning("producer %s: fatal error, replaced by a new client", self._config["client.id"])
        try:
            old.purge()  # fails what it still holds: each sender gets its delivery error
            old.flush(0)
        except KafkaException:  # the fatal error again: senders still waiting time out instead
            pass

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
        self._renew_if_fatal()
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key.encode(), headers=header_list, on_delivery=delivered
                )
                break
            except BufferError:
                # The local queue is full: serve delivery reports to make room, then retry.
                self._serve(0.05)
            except KafkaException as exc:
                raise BusError(f"cannot produce to {topic}: {self._fatal_error(exc)}") from exc
        self._serve(0)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve pending delivery callbacks without waiting for the whole queue."""
        self._serve(timeout_s)

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
            self._serve(0.002)
        if not acknowledged.is_set():
            raise BusError(f"record to {topic} not acknowledged after {timeout_s:g} s")
        if errors:
            raise errors[0]

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued record is acknowledged; raise BusError if any failed or timed out."""
        try:
            remaining = self._producer.flush(timeout_s)
        except KafkaException as exc:
            self._failures = []
            raise self._fatal_error(exc) from exc
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
                **connection_config(settings),
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
                "on_commit": self._on_commit,
                **({"group.instance.id": settings.group_instance_id} if settings.group_instance_id else {}),
            }
        )
        # With settings.delete_committed: (topic, partition) -> offset the broker confirmed committed,
        # below which the records are deleted at the next round (every settings.delete_interval_s).
        self._admin = (
            AdminClient({**connection_config(settings), "error_cb": _log_client_error})
            if settings.delete_committed
            else None
        )
        self._deletable: dict[tuple[str, int], int] = {}
        self._deleted_at = time.monotonic()
        # (topic, partition) -> next offset to commit (last processed + 1), not yet committed.
        self._pending: dict[tuple[str, int], int] = {}
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        self._closed = False
        # Idle pausing (_first_message): the paused partitions with their end offsets when paused, and
        # when to look for new records in them next (time.monotonic()).
        self._paused: dict[tuple[str, int], int] = {}
        self._check_at = 0.0
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        # A failed commit is harmless (the records are replayed) but worth seeing.
        if error is not None:
            if error.code() != KafkaError._NO_OFFSET:
                log.warning("offset commit failed (records will be replayed): %s", error)
            return
        self._note_committed(partitions)

    def _note_committed(self, partitions: list[TopicPartition]) -> None:
        if self._admin is not None:
            for tp in partitions:
                if tp.error is None and tp.offset >= 0:
                    key = (tp.topic, tp.partition)
                    self._deletable[key] = max(tp.offset, self._deletable.get(key, 0))

    def _delete_committed(self) -> None:
        """Delete the records below the committed offsets (what the group will never read again), so the
        broker holds the backlog rather than every record of its retention window."""
        if self._admin is None or not self._deletable:
            return
        if time.monotonic() - self._deleted_at < self._settings.delete_interval_s:
            return
        offsets, self._deletable = self._deletable, {}
        self._deleted_at = time.monotonic()
        requests = [
            TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()
        ]
        for tp, future in self._admin.delete_records(requests, request_timeout=10.0).items():
            future.add_done_callback(lambda done, tp=tp: _log_delete_failure(tp, done))

    def _on_assign(self, consumer: _KafkaConsumer, partitions: list[TopicPartition]) -> None:
        # Resume (and so fetch) the new partitions on the next poll: one may keep an earlier pause.
        self._paused = {(tp.topic, tp.partition): -1 for tp in partitions}
        self._check_at = 0.0

    def _on_revoke(self, consumer: _KafkaConsumer, partitions: list[TopicPartition]) -> None:
        # Hand the partitions over with everything processed so far committed, so the next owner
        # replays as little as possible.
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._paused = {tp: end for tp, end in self._paused.items() if tp not in revoked}
        offsets = {tp: offset for tp, offset in self._pending.items() if tp in revoked}
        for tp in revoked:
            self._pending.pop(tp, None)
        if offsets:
            self._commit_offsets(offsets, asynchronous=False)

    def _on_lost(self, consumer: _KafkaConsumer, partitions: list[TopicPartition]) -> None:
        # Another member owns them already; committing would be rejected.
        for tp in partitions:
            self._pending.pop((tp.topic, tp.partition), None)
            self._paused.pop((tp.topic, tp.partition), None)

    def poll_batch(self, max_records: int = 100, timeout_s: float = 0.1) -> list[Record]:
        """Up to max_records records (possibly none); errors other than partition EOF raise BusError."""
        self._maybe_commit()
        self._delete_committed()
        # consume() waits out its whole timeout unless max_records are there: wait for the first
        # record only, then take whatever else has already arrived without waiting.
        first = self._first_message(timeout_s)
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

    def _first_message(self, timeout_s: float) -> Message | None:
        """The next message within timeout_s. noida-db answers an empty fetch at once whatever
        fetch.wait.max.ms says, so librdkafka re-fetches thousands of times a second while a partition
        has nothing new (~0.2 core of broker and ~0.2 of client per idle consumer). So a consumer that
        gets nothing within idle_fetch_window_ms pauses its partitions, and every idle_fetch_interval_ms
        asks for their end offsets (one ListOffsets request) and resumes them once they have new
        records. While records keep coming the partitions stay resumed; a record that finds them paused
        waits up to one interval more."""
        interval_s = self._settings.idle_fetch_interval_ms / 1000.0
        if interval_s <= 0:
            return self._consumer.poll(timeout_s)
        deadline = time.monotonic() + timeout_s
        window_s = self._settings.idle_fetch_window_ms / 1000.0
        while True:
            now = time.monotonic()
            if self._paused:
                if now >= self._check_at:
                    self._check_at = now + interval_s
                    if self._resume_if_new_records():
                        # Records are there: wait for their fetch rather than pause again.
                        window_s = deadline - now
                        continue
                    self._pause()  # partitions left out last time
                # Paused partitions fetch nothing; this serves rebalance callbacks and errors (and the
                # records of partitions not paused).
                message = self._consumer.poll(max(min(self._check_at, deadline) - now, 0.0))
                if message is not None or time.monotonic() >= deadline:
                    return message
                continue
            message = self._consumer.poll(max(min(window_s, deadline - now), 0.0))
            if message is not None:
                return message
            self._pause()
            if time.monotonic() >= deadline:
                return None

    def _pause(self) -> None:
        """Pause the assigned partitions not paused yet that have nothing left to deliver: their fetch
        was answered (pausing one that looks up its start offset restarts the lookup, which then never
        finishes) and its end offset is where they would read next (pausing drops fetched records that
        were not delivered yet, and these would wait for records after them)."""
        positions = [
            tp
            for tp in self._consumer.position(self._consumer.assignment())
            if (tp.topic, tp.partition) not in self._paused
        ]
        # Where a partition reads next: its position once it delivered a record, else its committed
        # offset, else (a new group reads from the start) the first offset held.
        unread = [tp for tp in positions if tp.offset < 0]
        committed = {}
        if unread:
            try:
                found = self._consumer.committed(unread, timeout=1.0)
            except KafkaException as exc:
                log.debug("committed offsets not read: %s", exc)
                return
            committed = {(tp.topic, tp.partition): tp.offset for tp in found}
        ends = {}
        for tp in positions:
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            key = (tp.topic, tp.partition)
            start = tp.offset if tp.offset >= 0 else committed.get(key, OFFSET_INVALID)
            if start < 0:
                start = low
            if high >= 0 and high == start:
                ends[key] = high
        if ends and self._pause_partitions(ends, pause=True):
            if not self._paused:
                self._check_at = time.monotonic() + self._settings.idle_fetch_interval_ms / 1000.0
            self._paused.update(ends)

    def _resume_if_new_records(self) -> bool:
        partitions = [TopicPartition(topic, partition, OFFSET_END) for topic, partition in self._paused]
        try:
            latest = self._consumer.offsets_for_times(partitions, timeout=1.0)
            if not any(tp.offset > self._paused[(tp.topic, tp.partition)] for tp in latest):
                return False
        except KafkaException as exc:  # resume: a pause that outlives its use is worse than a fetch
            log.debug("end offsets not read: %s", exc)
        paused, self._paused = self._paused, {}
        if self._pause_partitions(paused, pause=False):
            # librdkafka's fetcher thread notices a resume only when something wakes it (it may sleep
            # a second): a request on its connection does.
            try:
                self._consumer.offsets_for_times(partitions[:1], timeout=1.0)
            except KafkaException as exc:
                log.debug("end offsets not read: %s", exc)
        return True

    def _pause_partitions(self, partitions: dict[tuple[str, int], int], pause: bool) -> bool:
        tps = [TopicPartition(topic, partition) for topic, partition in partitions]
        try:
            if pause:
                self._consumer.pause(tps)
            else:
                self._consumer.resume(tps)
        except KafkaException as exc:  # a rebalance took partitions meanwhile; the next round retries
            log.debug("pause/resume skipped: %s", exc)
            return False
        return True

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
            committed = self._consumer.commit(offsets=partitions, asynchronous=asynchronous)
            if committed:  # a synchronous commit's result; on_commit reports only asynchronous ones
                self._note_committed(committed)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in _REBALANCE_ERRORS:
                log.warning("offsets not committed after a rebalance (records will be replayed): %s", error)
                return
            raise BusError(f"commit failed: {error.str()}") from exc

    def lag(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> high watermark minus committed offset, for the assigned partitions that
        have been fetched (the high watermark the last fetch carried, no round trip: a paused partition
        resumes, and fetches, within idle_fetch_interval_ms of a new record)."""
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
