"""The loopback rule at start-up: which addresses count as loopback, the supervisor's refusal unless
listen_all is set, and `orate up --listen-all`."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.stack import cli, supervisor
from shared.stack.config import StackConfig
from shared.stack.control import StackError, StackStatus
from shared.stack.processes import StartupError

EXPOSED = "redis-server (pid 7) on tcp 0.0.0.0:6379"


@pytest.mark.parametrize(
    ("ip", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # 127.0.0.1 bound through an IPv6 socket, as gRPC does
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:0.0.0.0", False),
        ("127.0.0.2", False),
        ("192.168.1.20", False),
    ],
)
def test_only_127_0_0_1_and_ipv6_loopback_count(ip: str, loopback: bool) -> None:
    assert supervisor.on_loopback(ip) is loopback


def test_the_supervisor_refuses_listeners_beyond_loopback_unless_listen_all(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(supervisor, "listeners_beyond_loopback", lambda leaders: [EXPOSED])
    with pytest.raises(StartupError, match=r"(?s)0\.0\.0\.0:6379.*--listen-all"):
        supervisor.Supervisor(StackConfig(run_dir=tmp_path))._check_listeners()
    allowed = supervisor.Supervisor(StackConfig(run_dir=tmp_path, listen_all=True))
    allowed._check_listeners()
    assert allowed.state()["beyond_loopback"] == [EXPOSED]
    table = StackStatus(tmp_path, 1, "ready", None, [], beyond_loopback=[EXPOSED]).table()
    assert f"warning: listening beyond loopback (listen_all): {EXPOSED}" in table


def test_orate_up_listen_all_sets_the_config_and_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    configs: list[StackConfig] = []

    class FailingStack:
        def __init__(self, config: StackConfig) -> None:
            configs.append(config)

        def up(self, timeout_s: float | None = None) -> None:
            raise StackError("stopped here")

    monkeypatch.setattr(cli, "Stack", FailingStack)
    assert cli.main(["up", "--run-dir", str(tmp_path), "--listen-all"]) == 1
    assert cli.main(["up", "--run-dir", str(tmp_path)]) == 1
    assert [config.listen_all for config in configs] == [True, False]
    assert capsys.readouterr().err.count("warning: listen_all") == 1
