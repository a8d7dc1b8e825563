"""A worker opens /metrics where its settings say: loopback by default, any address a pod asks for."""

from __future__ import annotations

import pytest
from orchestrator import process
from orchestrator.settings import OrchestratorSettings


@pytest.mark.parametrize(("env", "host"), [({}, "127.0.0.1"), ({"ORATE_METRICS_HOST": "0.0.0.0"}, "0.0.0.0")])
def test_worker_metrics_bind_the_configured_host(monkeypatch: pytest.MonkeyPatch, env, host) -> None:
    opened = []
    monkeypatch.setattr(process, "freeze_heap", lambda: None)
    monkeypatch.setattr(process, "start_metrics_server", lambda port, addr: opened.append((port, addr)))
    for name, value in {"ORATE_METRICS_PORT": "29999", **env}.items():
        monkeypatch.setenv(name, value)
    process.worker_ready(OrchestratorSettings())
    assert opened == [(29999, host)]
