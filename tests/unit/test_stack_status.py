"""The status table's broker line: the fullest partition, and a warning once tansu would slow down."""

from __future__ import annotations

from pathlib import Path

from shared.stack.components import TANSU_SLOW_BATCHES
from shared.stack.control import BrokerFill, StackStatus


def _table(fill: BrokerFill | None) -> str:
    return StackStatus(Path("/run"), 1, "ready", None, [], fill).table()


def test_the_table_names_the_fullest_partition_and_warns_only_past_the_slow_level() -> None:
    calm = _table(BrokerFill("orate.jobs", 3, TANSU_SLOW_BATCHES - 1))
    assert f"orate.jobs/3 holds up to {TANSU_SLOW_BATCHES - 1} record batches" in calm
    assert "warning" not in calm
    full = _table(BrokerFill("orate.events", 0, TANSU_SLOW_BATCHES))
    assert "warning: tansu slows down" in full and "`orate down` then `orate up`" in full
    assert "broker:" not in _table(None)
