"""The bus against a real noida-db broker: topics, keyed records with headers, group commits and resume,
watermarks and lag, retention, and idle consumers that pause their partitions."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from polling import consume

from shared.bus import (
    CONTENT_TYPE_HEADER,
    JOB_ID_HEADER,
    TRACEPARENT_HEADER,
    Consumer,
    Producer,
    Record,
    Topics,
    ensure_topics,
    job_headers,
    watermarks,
)
from shared.settings import KafkaSettings

pytestmark = pytest.mark.integration


def _produce(settings: KafkaSettings, topic: str, values: list[bytes]) -> None:
    producer = Producer(settings, client_id="test-producer")
    for i, value in enumerate(values):
        producer.send(topic, f"job-{i}", value, job_headers(f"job-{i}"))
    producer.flush()
    producer.close()


def _committed_total(settings: KafkaSettings, group: str, topic: str) -> int:
    raw = RawConsumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group})
    try:
        offsets = raw.committed([TopicPartition(topic, p) for p in range(settings.partitions)], timeout=5.0)
    finally:
        raw.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def test_ensure_topics_creates_partitions_and_tolerates_existing(kafka_settings: KafkaSettings) -> None:
    topics = Topics(kafka_settings.topic_prefix)
    names = [topics.jobs, topics.work("asr-sactc")]
    ensure_topics(kafka_settings, names)
    ensure_topics(kafka_settings, names)
    metadata = AdminClient({"bootstrap.servers": kafka_settings.bootstrap_servers}).list_topics(timeout=5)
    for name in names:
        assert len(metadata.topics[name].partitions) == kafka_settings.partitions


def test_watermarks_count_the_records_of_every_partition_under_the_prefix(
    kafka_settings: KafkaSettings,
) -> None:
    topics = Topics(kafka_settings.topic_prefix)
    ensure_topics(kafka_settings, [topics.jobs, topics.events])
    producer = Producer(kafka_settings, client_id="test-producer")
    for _ in range(5):  # flushed one by one: five batches of one record, all on the partition of "job-1"
        producer.send(topics.jobs, "job-1", b"x")
        producer.flush()
    for _ in range(7):  # one batch of seven records
        producer.send(topics.jobs, "job-1", b"y")
    producer.flush()
    producer.close()
    offsets = watermarks(kafka_settings)
    partitions = range(kafka_settings.partitions)
    assert set(offsets) == {(topic, p) for topic in (topics.jobs, topics.events) for p in partitions}
    # Record offsets, not batch offsets (tansu 0.6 said 6 here).
    assert sorted(offsets.values()) == [(0, 0)] * (2 * kafka_settings.partitions - 1) + [(0, 12)]


def test_lag_is_records_produced_minus_records_committed_per_partition(
    kafka_settings: KafkaSettings,
) -> None:
    topic = Topics(kafka_settings.topic_prefix).work("lag")
    ensure_topics(kafka_settings, [topic])
    producer = Producer(kafka_settings, client_id="test-producer")
    delivered: list[bool] = []
    for i in range(40):
        producer.send(topic, f"job-{i}", b"x", on_delivery=lambda error: delivered.append(error is None))
    producer.flush()
    producer.close()
    assert delivered == [True] * 40
    produced = {p: high for (_, p), (_, high) in watermarks(kafka_settings).items()}
    assert sum(produced.values()) == 40

    consumer = Consumer(kafka_settings, group_id="g-lag", topics=[topic], client_id="lag")
    try:
        records = consume(consumer, 40)
        consumed = dict.fromkeys(produced, 0)
        # Process (and commit) all but the last 3 records of each partition.
        by_partition: dict[int, list[Record]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        for partition, taken in by_partition.items():
            for record in taken[: max(len(taken) - 3, 0)]:
                consumer.processed(record)
                consumed[partition] += 1
        consumer.commit()
        lag = consumer.lag()
    finally:
        consumer.close()
    assert len(records) == 40
    assert lag == {(topic, p): produced[p] - consumed[p] for p in produced}


def test_keyed_records_and_headers_round_trip_through_a_group(kafka_settings: KafkaSettings) -> None:
    topic = Topics(kafka_settings.topic_prefix).jobs
    ensure_topics(kafka_settings, [topic])
    producer = Producer(kafka_settings, client_id="test-producer")
    delivered: list[Exception | None] = []
    sent = {}
    for i in range(3):
        headers = job_headers(f"job-{i}", content_type="application/x-protobuf")
        sent[f"job-{i}"] = (f"payload-{i}".encode(), headers)
        producer.send(topic, f"job-{i}", f"payload-{i}".encode(), headers, on_delivery=delivered.append)
    producer.flush()
    producer.close()
    assert delivered == [None, None, None]

    consumer = Consumer(kafka_settings, group_id="g-headers", topics=[topic], client_id="test-consumer")
    try:
        records = consume(consumer, 3)
        for record in records:
            consumer.processed(record)
    finally:
        consumer.close()

    assert sorted(r.key for r in records) == ["job-0", "job-1", "job-2"]
    for record in records:
        value, headers = sent[record.key]
        assert record.value == value
        assert record.headers == headers
        assert record.headers[JOB_ID_HEADER] == record.key
        assert record.headers[CONTENT_TYPE_HEADER] == "application/x-protobuf"
        assert record.headers[TRACEPARENT_HEADER].startswith("00-")
        assert record.timestamp_ms > 0


def test_a_new_member_resumes_after_the_processed_records(kafka_settings: KafkaSettings) -> None:
    topic = Topics(kafka_settings.topic_prefix).work("resume")
    ensure_topics(kafka_settings, [topic])
    values = [f"v{i:02d}".encode() for i in range(30)]
    _produce(kafka_settings, topic, values)

    first = Consumer(kafka_settings, group_id="g-resume", topics=[topic], client_id="first")
    done: list[bytes] = []
    try:
        for record in consume(first, 30):
            # Records past the 15th were fetched but not processed: they must be delivered again.
            if len(done) < 15:
                first.processed(record)
                done.append(record.value)
    finally:
        first.close()
    assert len(done) == 15

    second = Consumer(kafka_settings, group_id="g-resume", topics=[topic], client_id="second")
    try:
        rest = consume(second, 15)
        # Anything beyond the 15 unprocessed records would be a replay of committed work.
        rest += second.poll_batch(max_records=10, timeout_s=0.5)
        for record in rest:
            second.processed(record)
        second.commit()
        lag = second.lag()
    finally:
        second.close()
    assert sorted(r.value for r in rest) == sorted(set(values) - set(done))
    assert lag == {(topic, p): 0 for p in range(kafka_settings.partitions)}


def test_offsets_are_committed_in_batches_not_per_record(kafka_settings: KafkaSettings) -> None:
    settings = kafka_settings.model_copy(update={"commit_every": 5, "commit_interval_ms": 60_000})
    topic = Topics(settings.topic_prefix).events
    ensure_topics(settings, [topic])
    _produce(settings, topic, [b"x"] * 10)

    consumer = Consumer(settings, group_id="g-batch", topics=[topic], client_id="batch")
    try:
        records = consume(consumer, 10)
        for record in records[:4]:
            consumer.processed(record)
        assert _committed_total(settings, "g-batch", topic) == 0
        consumer.processed(records[4])
        deadline = time.monotonic() + 5.0
        while _committed_total(settings, "g-batch", topic) != 5 and time.monotonic() < deadline:
            consumer.poll_batch(max_records=1, timeout_s=0.05)
        assert _committed_total(settings, "g-batch", topic) == 5
    finally:
        consumer.close()


def test_retention_drops_old_records_and_keeps_new_ones(kafka_settings: KafkaSettings) -> None:
    topic = Topics(kafka_settings.topic_prefix).events
    settings = kafka_settings.model_copy(update={"partitions": 1})
    ensure_topics(settings, [topic], configs={"retention.ms": "1000"})
    _produce(settings, topic, [b"old"] * 10)
    deadline = time.monotonic() + 20.0
    while watermarks(settings)[(topic, 0)] != (10, 10):
        assert time.monotonic() < deadline, f"retention left {watermarks(settings)}"
        time.sleep(0.2)
    _produce(settings, topic, [b"new"] * 3)
    consumer = Consumer(settings, group_id="g-retention", topics=[topic], client_id="retention")
    try:
        records = consume(consumer, 3)
    finally:
        consumer.close()
    assert [(r.offset, r.value) for r in records] == [(10, b"new"), (11, b"new"), (12, b"new")]


def test_a_consumer_deletes_the_records_its_group_committed(kafka_settings: KafkaSettings) -> None:
    settings = kafka_settings.model_copy(update={"delete_committed": True, "delete_interval_s": 0.1})
    topic = Topics(settings.topic_prefix).jobs
    ensure_topics(settings, [topic])
    _produce(settings, topic, [f"v{i}".encode() for i in range(30)])
    consumer = Consumer(settings, group_id="g-delete", topics=[topic], client_id="delete")
    try:
        records = consume(consumer, 30)
        for record in records[:20]:
            consumer.processed(record)
        consumer.commit()
        committed = {(r.topic, r.partition): r.offset + 1 for r in records[:20]}
        deadline = time.monotonic() + 10
        while {tp: low for tp, (low, _) in watermarks(settings).items() if tp in committed} != committed:
            assert time.monotonic() < deadline, watermarks(settings)
            consumer.poll_batch(10, 0.05)
    finally:
        consumer.close()
    # What was not processed is still there for the group.
    assert sum(high - low for low, high in watermarks(settings).values()) == 10


def test_an_idle_consumer_pauses_and_still_gets_each_new_record(kafka_settings: KafkaSettings) -> None:
    topic = Topics(kafka_settings.topic_prefix).work("idle")
    ensure_topics(kafka_settings, [topic])
    consumer = Consumer(kafka_settings, group_id="g-idle", topics=[topic], client_id="idle")
    producer = Producer(kafka_settings, client_id="test-producer")
    try:
        _produce(kafka_settings, topic, [b"first"])
        assert [r.value for r in consume(consumer, 1)] == [b"first"]
        for i in range(10):
            # Idle for many intervals: the partitions are paused when the record comes.
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:
                assert consumer.poll_batch(10, 0.05) == []
            producer.send(topic, f"job-{i}", f"r{i}".encode())
            producer.flush()
            assert [r.value for r in consume(consumer, 1, timeout_s=2.0)] == [f"r{i}".encode()]
    finally:
        producer.close()
        consumer.close()


_MEMBER = """
import sys
from shared.bus import Consumer
from shared.settings import KafkaSettings
settings = KafkaSettings.model_validate_json(sys.argv[1])
consumer = Consumer(settings, group_id=sys.argv[2], topics=[sys.argv[3]], client_id="doomed")
for record in iter(lambda: consumer.poll_batch(10, 0.2), None):
    if record:
        print("GOT", flush=True)
"""


def test_a_member_killed_without_leaving_is_replaced_at_once_by_its_static_successor(
    kafka_settings: KafkaSettings,
) -> None:
    """A member that dies without leaving its group (SIGKILL): the embedded broker never completes a
    rebalance around it, so the stack's engine and runners join with a static member id, and the restarted
    process takes the partitions back at once."""
    settings = kafka_settings.model_copy(update={"group_instance_id": "engine"})
    topic = Topics(settings.topic_prefix).work("static")
    ensure_topics(settings, [topic])
    _produce(settings, topic, [b"first"])
    doomed = subprocess.Popen(
        [sys.executable, "-c", _MEMBER, settings.model_dump_json(), "g-static", topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert doomed.stdout is not None and doomed.stdout.readline().strip() == "GOT"
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    _produce(settings, topic, [b"second"])
    successor = Consumer(settings, group_id="g-static", topics=[topic], client_id="successor")
    try:
        # The first record was never committed, so the successor gets both.
        got = sorted(record.value for record in consume(successor, 2, timeout_s=20.0))
    finally:
        successor.close()
    assert got == [b"first", b"second"]
