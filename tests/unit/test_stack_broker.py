"""The embedded broker choice: noida-db by default (durable; consumers pause idle partitions and delete
what they committed), tansu on request (memory only: neither applies)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.stack.components import BROKER_IDLE_FETCH_INTERVAL_MS, plan_stack
from shared.stack.config import StackConfig


@pytest.mark.parametrize(
    ("broker", "binary", "idle_fetch_ms", "delete_committed"),
    [("noida-db", "noida-db", str(BROKER_IDLE_FETCH_INTERVAL_MS), "true"), ("tansu", "tansu", "0", "false")],
)
def test_the_broker_and_its_client_settings_go_together(
    tmp_path: Path, broker: str, binary: str, idle_fetch_ms: str, delete_committed: str
) -> None:
    config = StackConfig(
        run_dir=tmp_path, broker=broker, deployments_file=tmp_path / "none.yaml", prometheus=False
    ).resolved()
    plan = plan_stack(config)
    kafka = next(c for c in plan.components if c.name == "kafka")
    assert Path(kafka.argv[0]).name == binary
    assert plan.env["ORATE_KAFKA__IDLE_FETCH_INTERVAL_MS"] == idle_fetch_ms
    assert plan.env["ORATE_KAFKA__DELETE_COMMITTED"] == delete_committed
