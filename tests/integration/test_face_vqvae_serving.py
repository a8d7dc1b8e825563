"""face-vqvae deploy entries (tiny config, seeded random weights) on a real tritonserver and Ray host."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from shared.serving.clients import ModelClient, RayServeClient, TritonClient
from shared.serving.local import local_ray_serve, local_triton
from shared.serving.predictor import InvalidRequest

pytest.importorskip("ray.serve")
pytest.importorskip("pytriton")
pytest.importorskip("face_vqvae")

from orate.v1.common_pb2 import Audio  # noqa: E402
from orate.v1.models_pb2 import FaceVqvaeRequest, FaceVqvaeResponse  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "services" / "face-vqvae" / "deploy"
TIMEOUT_S = 30.0
# One thread in both servers: Ray gives a quarter-core replica one thread and Triton would take all cores,
# and a different reduction order could move a float by an ulp and flip a sampled code.
TINY = {"config": "tiny", "allow_random_init": True, "init_seed": 7, "num_threads": 1}


def tiny_deployments(backend: str, out: Path) -> Path:
    """The committed deploy entry for `backend`, with the tiny config and seeded random weights."""
    deployments = yaml.safe_load((DEPLOY / f"{backend}.yaml").read_text())
    for spec in deployments["deployments"]:
        spec["predictor_config"] = TINY
    out.write_text(yaml.safe_dump(deployments))
    return out


@pytest.fixture(scope="module")
def ray_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelClient]:
    run_dir = tmp_path_factory.mktemp("ray")
    with local_ray_serve(tiny_deployments("ray", run_dir / "deployments.yaml"), run_dir, cwd=ROOT) as ray:
        client = RayServeClient(ray.url, "face-vqvae")
        yield client
        client.close()


@pytest.fixture(scope="module")
def triton_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelClient]:
    run_dir = tmp_path_factory.mktemp("triton")
    with local_triton(tiny_deployments("triton", run_dir / "deployments.yaml"), run_dir) as triton:
        client = TritonClient(triton.grpc_address, "face-vqvae")
        yield client
        client.close()


@pytest.fixture(scope="module")
def clients(ray_client: ModelClient, triton_client: ModelClient) -> dict[str, ModelClient]:
    return {"ray": ray_client, "triton": triton_client}


def speech_wav(seconds: float, rate: int = 22050) -> bytes:
    """A voiced, amplitude-modulated tone at a rate the predictor has to resample."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def request(seconds: float = 1.2, **fields: object) -> bytes:
    values: dict[str, object] = {"identity": "W009", "emotion": "happy", "intensity": 2}
    values |= {"num_samples": 3, "temperature": 0.5, "seed": 42} | fields
    return FaceVqvaeRequest(
        audio=Audio(data=speech_wav(seconds), media_type="audio/wav"), **values
    ).SerializeToString()


def motions(response: bytes) -> list[np.ndarray]:
    samples = FaceVqvaeResponse.FromString(response).samples
    return [np.frombuffer(m.data_f32, dtype="<f4").reshape(m.frames, m.dims) for m in samples]


def test_same_seed_gives_the_same_motion_on_triton_and_ray(clients: dict[str, ModelClient]) -> None:
    from_triton = clients["triton"].predict(request(), TIMEOUT_S)
    from_ray = clients["ray"].predict(request(), TIMEOUT_S)
    triton_motion, ray_motion = motions(from_triton), motions(from_ray)
    assert [m.shape for m in triton_motion] == [(30, 53)] * 3
    for a, b in zip(triton_motion, ray_motion, strict=True):
        np.testing.assert_array_equal(a, b)
    # The three samples are distinct draws, and another seed draws others.
    assert not np.allclose(triton_motion[0], triton_motion[1])
    other = motions(clients["triton"].predict(request(seed=43), TIMEOUT_S))
    assert not np.allclose(other[0], triton_motion[0])


BAD_REQUESTS: list[tuple[Callable[[], bytes], str]] = [
    (lambda: request(seconds=0.1), "at least"),
    (lambda: request(emotion="bored"), "unknown emotion 'bored'"),
    (lambda: request(intensity=3), "intensity 3 out of range"),
    (lambda: request(temperature=2.5), "temperature 2.5 out of range"),
]


@pytest.mark.parametrize("backend", ["triton", "ray"])
@pytest.mark.parametrize(
    ("make", "reason"), BAD_REQUESTS, ids=["short", "emotion", "intensity", "temperature"]
)
def test_bad_requests_are_invalid_with_the_reason(
    clients: dict[str, ModelClient], backend: str, make: Callable[[], bytes], reason: str
) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        clients[backend].predict(make(), TIMEOUT_S)
