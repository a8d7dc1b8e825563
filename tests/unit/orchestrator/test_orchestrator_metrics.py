"""Consumer lag is refreshed on a thread of its own while the consumer loop runs, and only then; per-tenant
labels stay bounded."""

from __future__ import annotations

import threading
import time

from orchestrator import metrics

from shared.bus import BusError


class LaggingConsumer:
    def __init__(self, lags: list[dict[tuple[str, int], int] | BusError]) -> None:
        self.lags = lags
        self.calls = 0
        self.called = threading.Event()

    def lag(self) -> dict[tuple[str, int], int]:
        answer = self.lags[min(self.calls, len(self.lags) - 1)]
        self.calls += 1
        if self.calls >= len(self.lags):
            self.called.set()
        if isinstance(answer, BusError):
            raise answer
        return answer


def gauge(group: str, topic: str, partition: int) -> float:
    return metrics.CONSUMER_LAG.labels(group, topic, str(partition))._value.get()


def test_lag_is_refreshed_on_a_thread_until_the_loop_ends() -> None:
    consumer = LaggingConsumer([{("t.jobs", 0): 7}, BusError("broker away"), {("t.jobs", 0): 3}])
    with metrics.LagReporter(consumer, "g-lag", interval_s=0.001):  # type: ignore[arg-type]
        assert consumer.called.wait(10)
    calls = consumer.calls
    time.sleep(0.05)
    assert consumer.calls == calls  # stopped with the loop
    assert gauge("g-lag", "t.jobs", 0) == 3  # the failed refresh in between did not stop the thread


def test_tenant_labels_name_the_first_tenants_and_pool_the_rest() -> None:
    labels = metrics.TenantLabels(limit=2)
    assert [labels(t) for t in ["acme", "globex", "acme", "initech", "umbrella", "globex"]] == [
        "acme",
        "globex",
        "acme",
        "_other",
        "_other",
        "globex",
    ]
    assert metrics.TenantLabels(limit=0)("acme") == "_other"
