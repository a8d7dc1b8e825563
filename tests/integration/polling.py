"""Waiting for records in the bus tests."""

from __future__ import annotations

import time

from shared.bus import Consumer, Record


def consume(consumer: Consumer, count: int, timeout_s: float = 20.0) -> list[Record]:
    """Poll until count records arrived (the first poll includes the group join) or timeout_s passed."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        records += consumer.poll_batch(max_records=count - len(records), timeout_s=0.2)
    return records
