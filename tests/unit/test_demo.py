"""`orate demo` leaves nothing running when it fails, and leaves a stack it did not start alone."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from shared.stack import demo


@dataclass
class FakeStack:
    run_dir: Path
    already_up: bool
    calls: list[str] = field(default_factory=list)

    def status(self):
        return type("Status", (), {"ok": self.already_up})()

    def up(self):
        self.calls.append("up")

    def down(self):
        self.calls.append("down")

    def urls(self):
        # A port nothing listens on: the first API call fails as a stack that died would make it fail.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return type("Urls", (), {"api_url": f"http://127.0.0.1:{port}"})()


def test_a_failed_demo_stops_the_stack_it_started(tmp_path):
    stack = FakeStack(tmp_path, already_up=False)
    with pytest.raises(httpx.ConnectError):
        demo.run_demo(stack)
    assert stack.calls == ["up", "down"]


def test_a_failed_demo_leaves_a_stack_it_found_running(tmp_path):
    stack = FakeStack(tmp_path, already_up=True)
    with pytest.raises(httpx.ConnectError):
        demo.run_demo(stack)
    assert stack.calls == []


def test_failed_jobs_stop_the_stack_the_demo_started(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "_run_jobs", lambda stack: 1)
    stack = FakeStack(tmp_path, already_up=False)
    assert demo.run_demo(stack) == 1
    assert stack.calls == ["up", "down"]
