"""A Ray runner's wait for its deployment, with stand-ins for ray.serve and the clock (the logic, not Ray:
importing Ray here would fix its environment before the integration tests join a cluster)."""

from __future__ import annotations

import sys
import types

import pytest

from shared.serving import clients
from shared.serving.clients import model_client
from shared.serving.deployments import DeploymentSpec
from shared.settings import ModelEndpoints, OrateSettings

NO_SERVE = "There is no Serve instance running on this Ray cluster."


class RayServeException(Exception):
    pass


class Clock:
    """time.monotonic and time.sleep for clients: sleeping moves the clock on at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def fake_serve(monkeypatch: pytest.MonkeyPatch, failures: list[Exception] | None) -> list[str]:
    """ray.serve whose get_deployment_handle raises the given errors in turn, then answers (None: it never
    does); returns what it was asked for."""
    asked: list[str] = []

    def get_deployment_handle(name: str, app_name: str) -> str:
        asked.append(f"{app_name}/{name}")
        if failures is None:
            raise RayServeException(NO_SERVE)
        if failures:
            raise failures.pop(0)
        return f"handle:{name}"

    serve = types.ModuleType("ray.serve")
    serve.get_deployment_handle = get_deployment_handle  # type: ignore[attr-defined]
    exceptions = types.ModuleType("ray.serve.exceptions")
    exceptions.RayServeException = RayServeException  # type: ignore[attr-defined]
    ray = types.ModuleType("ray")
    ray.serve = serve  # type: ignore[attr-defined]
    for name, module in (("ray", ray), ("ray.serve", serve), ("ray.serve.exceptions", exceptions)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(clients, "time", Clock())
    return asked


def test_a_ray_runner_waits_until_serve_runs_its_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = KeyError("Deployment(name='tts', app='tts') does not exist.")
    asked = fake_serve(monkeypatch, [RayServeException(NO_SERVE), missing])
    assert clients._wait_for_handle("tts") == "handle:tts"
    assert asked == ["tts/tts"] * 3


def test_a_ray_runner_gives_up_after_the_wait_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_serve(monkeypatch, None)
    with pytest.raises(clients.ModelUnavailable, match=f"tts not served after 300 s: {NO_SERVE}"):
        clients._wait_for_handle("tts")
    assert len(asked) == 302  # once a second, from 0 s to past 300 s


def spec(service: str, backend: str) -> DeploymentSpec:
    return DeploymentSpec(
        service=service, backend=backend, predictor="x:Y", request_type="r", response_type="s"
    )


def test_a_service_with_its_own_address_is_reached_there() -> None:
    endpoints = ModelEndpoints(
        ray_address="127.0.0.1:6379",
        services={"asr-sactc": "asr-triton:8001", "face-vqvae": "http://face-serve:8000"},
    )
    assert model_client(spec("asr-sactc", "triton"), endpoints).url == "asr-triton:8001"
    assert (
        model_client(spec("face-vqvae", "ray"), endpoints).url == "http://face-serve:8000/face-vqvae/predict"
    )
    assert model_client(spec("preview-render", "triton"), endpoints).url == endpoints.triton_grpc_url


def test_the_services_map_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORATE_ENDPOINTS__SERVICES", '{"asr-sactc": "asr-triton:8001"}')
    assert OrateSettings().endpoints.triton_url_for("asr-sactc") == "asr-triton:8001"
