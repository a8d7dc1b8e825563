"""Fixture predictors served by a real Ray host and a real tritonserver, called through the model clients."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from shared.serving import ray_driver
from shared.serving.clients import ModelClient, ModelUnavailable, RayServeClient, model_client
from shared.serving.deployments import load_deployments
from shared.serving.local import LocalRayServe, ray_host_command, triton_counts
from shared.serving.predictor import InvalidRequest
from shared.testing import free_port

pytest.importorskip("ray.serve")
pytest.importorskip("pytriton")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "proto"))
from orate_fixtures.v1 import fixtures_pb2 as fx  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "tests" / "fixtures" / "deployments.yaml"
TIMEOUT_S = 30.0


def descendants(pid: int) -> set[int]:
    """All live processes below pid, from /proc (fields after the command's ')' are state, ppid, ...)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{process.args[0]} did not become ready:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM by PID, then check the process and everything it started are gone."""
    tree = descendants(process.pid)
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in tree if alive(pid)], "processes left behind after SIGTERM"


def ready_http(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@pytest.fixture(scope="module")
def ray_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayServe]:
    """A Ray host serving the fixture deployments."""
    argv, env, ray = ray_host_command(DEPLOYMENTS)
    log = tmp_path_factory.mktemp("ray") / "ray_host.log"
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_until(lambda: "READY" in log.read_text(), process, log, timeout_s=120)
        assert ready_http(f"{ray.url}/-/healthz")()
        yield ray
    finally:
        ray_driver.disconnect()
        stop(process)


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(gRPC address, metrics URL) of a tritonserver serving the fixture repository."""
    from shared.serving.triton import build_model_repository, triton_command

    run_dir = tmp_path_factory.mktemp("triton")
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    repo = build_model_repository(DEPLOYMENTS, run_dir)
    argv, env = triton_command(repo, run_dir, http_port, grpc_port, metrics_port)
    log = run_dir / "tritonserver.log"
    with log.open("w") as out:
        process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(ready_http(f"http://127.0.0.1:{http_port}/v2/health/ready"), process, log, timeout_s=60)
        yield f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def client(ray_serve: LocalRayServe, triton: tuple[str, str]) -> Iterator[Callable[[str], ModelClient]]:
    """Clients as the runners make them: Ray deployments through handles, Triton over gRPC."""
    endpoints = ray_serve.endpoints.model_copy(update={"triton_grpc_url": triton[0]})
    deployments = load_deployments(DEPLOYMENTS)
    clients: dict[str, ModelClient] = {}

    def get(service: str) -> ModelClient:
        if service not in clients:
            clients[service] = model_client(deployments.get(service), endpoints)
        return clients[service]

    yield get
    for made in clients.values():
        made.close()


def sine_wav(amplitude: float, frequency: float = 440.0, rate: int = 16000, seconds: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, amplitude * np.sin(2 * np.pi * frequency * t), rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_resampler_on_ray_returns_audio_at_the_target_rate(client: Callable[[str], ModelClient]) -> None:
    request = fx.ResampleRequest(audio={"data": sine_wav(0.5)}, target_rate=8000)
    response = fx.ResampleResponse.FromString(
        client("fixture-resampler").predict(request.SerializeToString(), TIMEOUT_S)
    )
    wave, rate = sf.read(io.BytesIO(response.audio.data))
    assert (response.sample_rate, rate, len(wave)) == (8000, 8000, 4000)
    assert response.duration_s == pytest.approx(0.5)
    assert np.max(np.abs(wave)) == pytest.approx(0.5, abs=0.01)


def test_loudness_on_triton_measures_a_known_sine(client: Callable[[str], ModelClient]) -> None:
    request = fx.LoudnessRequest(audio={"data": sine_wav(0.5)})
    response = fx.LoudnessResponse.FromString(
        client("fixture-loudness").predict(request.SerializeToString(), TIMEOUT_S)
    )
    # RMS of a sine is amplitude / sqrt(2): 20*log10(0.5/sqrt(2)) = -9.03 dBFS; its peak is -6.02 dBFS.
    assert response.rms_dbfs == pytest.approx(-9.031, abs=0.01)
    assert response.peak_dbfs == pytest.approx(-6.021, abs=0.01)
    assert response.duration_s == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("service", "request_message"),
    [
        ("fixture-resampler", fx.ResampleRequest(audio={"data": b"not audio"}, target_rate=8000)),
        ("fixture-loudness", fx.LoudnessRequest(audio={"data": b"not audio"})),
    ],
)
def test_invalid_audio_is_an_invalid_request_on_both_backends(
    client: Callable[[str], ModelClient], service: str, request_message: fx.LoudnessRequest
) -> None:
    with pytest.raises(InvalidRequest, match="audio is not decodable"):
        client(service).predict(request_message.SerializeToString(), TIMEOUT_S)


def test_ray_over_http_resamples_like_through_a_handle(
    ray_serve: LocalRayServe, client: Callable[[str], ModelClient]
) -> None:
    request = fx.ResampleRequest(audio={"data": sine_wav(0.5)}, target_rate=8000).SerializeToString()
    http = RayServeClient(ray_serve.url, "fixture-resampler")
    try:
        assert http.predict(request, TIMEOUT_S) == client("fixture-resampler").predict(request, TIMEOUT_S)
    finally:
        http.close()


def test_ray_over_http_rejects_an_undecodable_body_with_400(ray_serve: LocalRayServe) -> None:
    response = httpx.post(
        f"{ray_serve.url}/fixture-resampler/predict", content=b"\xff\xff\xff", timeout=TIMEOUT_S
    )
    assert response.status_code == 400
    assert "orate.fixtures.v1.ResampleRequest" in response.json()["error"]


@pytest.mark.parametrize("service", ["fixture-always-fails", "fixture-always-fails-ray"])
def test_a_failing_predictor_is_model_unavailable(client: Callable[[str], ModelClient], service: str) -> None:
    with pytest.raises(ModelUnavailable, match="fixture failure: always fails"):
        client(service).predict(fx.FailRequest(tag="x").SerializeToString(), TIMEOUT_S)


@pytest.mark.parametrize("service", ["fixture-sleep-ray", "fixture-sleep-triton"])
def test_a_slow_call_times_out(client: Callable[[str], ModelClient], service: str) -> None:
    with pytest.raises(TimeoutError):
        client(service).predict(fx.SleepRequest(seconds=1.0).SerializeToString(), timeout_s=0.3)


def test_ray_and_triton_give_identical_responses(client: Callable[[str], ModelClient]) -> None:
    request = fx.SleepRequest(seconds=0.01, tag="same").SerializeToString()
    from_ray = client("fixture-sleep-ray").predict(request, TIMEOUT_S)
    from_triton = client("fixture-sleep-triton").predict(request, TIMEOUT_S)
    assert from_ray == from_triton == fx.SleepResponse(tag="same", slept_s=0.01).SerializeToString()


def concurrently(call: Callable[[int], bytes], n: int) -> list[bytes]:
    """n calls from n threads released together, so the server sees them at once."""
    barrier = threading.Barrier(n)

    def run(i: int) -> bytes:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_triton_batches_concurrent_calls(
    client: Callable[[str], ModelClient], triton: tuple[str, str]
) -> None:
    sleeper = client("fixture-sleep-triton")
    before = triton_counts(triton[1], "fixture-sleep-triton")
    responses = concurrently(
        lambda i: sleeper.predict(fx.SleepRequest(tag=str(i)).SerializeToString(), TIMEOUT_S), 16
    )
    after = triton_counts(triton[1], "fixture-sleep-triton")
    assert [fx.SleepResponse.FromString(r).tag for r in responses] == [str(i) for i in range(16)]
    # NaN (a count Triton did not report) fails both comparisons.
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == 16
    assert executions < inferences, f"16 concurrent requests ran in {executions:.0f} executions"


def test_ray_batches_concurrent_calls(client: Callable[[str], ModelClient]) -> None:
    # The Sleeper sleeps once per batch: 8 calls of 0.5 s take about 0.5 s batched and 4 s one by one.
    sleeper = client("fixture-sleep-ray")
    started = time.monotonic()
    responses = concurrently(
        lambda i: sleeper.predict(fx.SleepRequest(seconds=0.5, tag=str(i)).SerializeToString(), TIMEOUT_S), 8
    )
    elapsed = time.monotonic() - started
    assert [fx.SleepResponse.FromString(r).tag for r in responses] == [str(i) for i in range(8)]
    assert elapsed < 2.5, f"8 concurrent 0.5 s calls took {elapsed:.1f} s"
