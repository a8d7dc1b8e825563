"""Bus helpers that need no broker: topic names, record headers, and a flush that must fail."""

from __future__ import annotations

import re

import pytest

from shared.bus import (
    CONTENT_TYPE_HEADER,
    JOB_ID_HEADER,
    TRACEPARENT_HEADER,
    BusError,
    Producer,
    Topics,
    connection_config,
    job_headers,
    new_traceparent,
)
from shared.settings import KafkaSettings
from shared.testing import free_port

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


def test_topic_names_follow_the_prefix() -> None:
    topics = Topics("acme")
    assert (topics.jobs, topics.events, topics.dlq) == ("acme.jobs", "acme.events", "acme.dlq")
    assert topics.work("asr-sactc") == "acme.work.asr-sactc"
    assert Topics().jobs == "orate.jobs"


def test_traceparents_are_w3c_and_fresh() -> None:
    first, second = new_traceparent(), new_traceparent()
    assert TRACEPARENT.match(first) and TRACEPARENT.match(second)
    assert first != second


def test_job_headers_keep_a_given_trace_and_add_the_content_type() -> None:
    headers = job_headers("job-1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01", content_type="x/y")
    assert headers == {
        JOB_ID_HEADER: "job-1",
        TRACEPARENT_HEADER: "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        CONTENT_TYPE_HEADER: "x/y",
    }
    fresh = job_headers("job-2")
    assert TRACEPARENT.match(fresh[TRACEPARENT_HEADER]) and CONTENT_TYPE_HEADER not in fresh


def test_flush_raises_when_nothing_acknowledges() -> None:
    # Nothing listens on this port, so the record can never be acknowledged.
    producer = Producer(KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"), client_id="unit")
    producer.send("t", "k", b"v")
    try:
        with pytest.raises(BusError, match="not acknowledged"):
            producer.flush(timeout_s=0.3)
    finally:
        producer.close(timeout_s=0)


def test_every_client_gets_the_security_settings_of_a_secured_kafka() -> None:
    plain = connection_config(KafkaSettings(bootstrap_servers="k:9092"))
    assert plain == {"bootstrap.servers": "k:9092"}
    secured = connection_config(
        KafkaSettings(
            bootstrap_servers="k:9096",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="orate",
            sasl_password="s3cret",
        )
    )
    assert secured == {
        "bootstrap.servers": "k:9096",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "orate",
        "sasl.password": "s3cret",
    }
    # librdkafka refuses unknown or ill-matched keys when a client is made: these make one.
    settings = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
    )
    Producer(settings, client_id="secured").close(timeout_s=0)
