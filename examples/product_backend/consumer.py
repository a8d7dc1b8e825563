"""Example product backend: follows Orate's job events on Kafka with kafka-python.

Run against the embedded stack:
    python examples/product_backend/consumer.py --bootstrap 127.0.0.1:29092

Events are CloudEvents 1.0 in structured JSON mode, keyed by job id, so one job's events arrive in order
on one partition. The extension attribute `tenant` names the tenant the job belongs to (the one whose
API key submitted it): a backend serving several tenants routes events by it. Delivery is at-least-once:
a replay after a crash repeats events with the same `id`, which this consumer drops. Offsets are
committed only after an event is handled.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator

from kafka import KafkaConsumer

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"


class JobEventFollower:
    """Yields parsed, de-duplicated job events; commits after each batch the caller has consumed."""

    def __init__(
        self, bootstrap: str, topic: str = "orate.events", group_id: str = "product-backend"
    ) -> None:
        self._consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            # Short timeouts: a group join takes about session_timeout/2 on tansu.
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            fetch_max_wait_ms=10,
        )
        self._seen: set[str] = set()

    def events(self, timeout_s: float, first_timeout_s: float = 30.0) -> Iterator[dict]:
        """Events until timeout_s passes with nothing new (first_timeout_s for the first one: joining
        the group takes seconds)."""
        deadline = time.monotonic() + max(timeout_s, first_timeout_s)
        while time.monotonic() < deadline:
            batches = self._consumer.poll(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    event = self._parse(record.value, dict(record.headers or []))
                    if event is not None and event["id"] not in self._seen:
                        self._seen.add(event["id"])
                        deadline = time.monotonic() + timeout_s
                        yield event
            if batches:
                self._consumer.commit()

    @staticmethod
    def _parse(value: bytes, headers: dict[str, bytes]) -> dict | None:
        content_type = headers.get("content-type", b"").decode()
        if content_type and content_type != CLOUDEVENTS_CONTENT_TYPE:
            return None
        event = json.loads(value)
        if event.get("specversion") != "1.0":
            return None
        return event

    def close(self) -> None:
        self._consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:29092")
    parser.add_argument("--topic", default="orate.events")
    parser.add_argument("--group", default="product-backend")
    parser.add_argument("--idle-timeout", type=float, default=60.0)
    args = parser.parse_args()
    follower = JobEventFollower(args.bootstrap, args.topic, args.group)
    try:
        for event in follower.events(args.idle_timeout):
            data = event.get("data", {})
            tenant = event.get("tenant", "-")
            print(tenant, event["subject"], event["type"], data.get("stage", ""), flush=True)
    finally:
        follower.close()


if __name__ == "__main__":
    main()
