"""The status table's broker line: records held, the fullest partition and the broker's data size."""

from __future__ import annotations

from pathlib import Path

from shared.stack.control import BrokerFill, StackStatus


def _table(fill: BrokerFill | None) -> str:
    return StackStatus(Path("/run"), 1, "ready", None, [], fill).table()


def test_the_table_shows_what_the_broker_holds() -> None:
    table = _table(BrokerFill(1234, "orate.jobs", 3, 400, 12_300_000))
    assert "broker: 1234 records held, fullest partition orate.jobs/3 (400); data 12.3 MB" in table
    assert "broker:" not in _table(None)
