"""The Ray driver helper's rules, without a cluster: one cluster per process, env set before Ray's import."""

from __future__ import annotations

import pytest

from shared.serving import ray_driver


def test_a_process_joins_one_cluster_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_driver, "_joined", "127.0.0.1:20001")
    ray_driver.connect("127.0.0.1:20001", "token")  # the same cluster again: nothing to do
    with pytest.raises(RuntimeError, match="already joined the Ray cluster at 127.0.0.1:20001"):
        ray_driver.connect("127.0.0.1:20002", "token")


def test_driver_environment_turns_token_auth_on_keeps_loopback_and_never_starts_ray() -> None:
    assert ray_driver.driver_environment("abc", loopback=True) == {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": "abc",
        "RAY_ENABLE_AUTO_CONNECT": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    assert ray_driver.driver_environment("", loopback=False) == {"RAY_ENABLE_AUTO_CONNECT": "0"}


def test_cluster_token_is_stable_within_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    first = ray_driver.cluster_token()
    assert len(first) == 64 and ray_driver.cluster_token() == first


def test_a_driver_waits_for_a_cluster_that_is_still_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    tries: list[str] = []

    def init(address: str, **_: object) -> None:
        tries.append(address)
        if len(tries) < 3:
            raise ConnectionError(f"Failed to connect to Ray cluster at {address}")

    monkeypatch.setattr(ray_driver, "_joined", None)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray_driver.time, "sleep", lambda _: None)
    ray_driver.connect("127.0.0.1:20003", ray_driver.cluster_token())
    assert tries == ["127.0.0.1:20003"] * 3 and ray_driver._joined == "127.0.0.1:20003"
