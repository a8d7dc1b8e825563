"""tts-gesture on a real Ray Serve host and a real tritonserver (decoupled), from the committed deploy entries
with a tiny random checkpoint: the stream's chunks arrive in order, one per phrase, and laid end to end
equal the whole response, which a direct call answers too; bad input is refused before any chunk with the
reason (HTTP 422 on Ray Serve)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import yaml

from shared.serving.clients import ModelClient, RayServeClient, TritonClient
from shared.serving.local import local_ray_serve, local_triton
from shared.serving.predictor import InvalidRequest

pytest.importorskip("ray.serve")
pytest.importorskip("pytriton")
torch = pytest.importorskip("torch")
pytest.importorskip("tts_gesture")

from orate.v1.models_pb2 import TtsGestureChunk, TtsGestureRequest, TtsGestureResponse  # noqa: E402
from tts_gesture.testing import save_tiny_checkpoint  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "services" / "tts-gesture" / "deploy"
SERVICE = "tts-gesture"
TIMEOUT_S = 60.0
TEXT = "Hello there, my friend. This is a streaming test; it works!"
PHRASES = ["Hello there,", "my friend.", "This is a streaming test;", "it works!"]


def deployments(backend: str, out: Path, checkpoint: Path) -> Path:
    """The committed deploy entry for `backend`, on the given checkpoint."""
    loaded = yaml.safe_load((DEPLOY / f"{backend}.yaml").read_text())
    for spec in loaded["deployments"]:
        spec["predictor_config"] = {**spec["predictor_config"], "checkpoint": str(checkpoint)}
    out.write_text(yaml.safe_dump(loaded))
    return out


def request(text: str = TEXT, **fields) -> bytes:
    return TtsGestureRequest(text=text, **fields).SerializeToString()


def samples(wav: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(wav), dtype="int16")[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tts") / "tiny")


@pytest.fixture(scope="module")
def ray_url(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> Iterator[str]:
    run_dir = tmp_path_factory.mktemp("ray")
    with local_ray_serve(
        deployments("ray", run_dir / "deployments.yaml", checkpoint), run_dir, cwd=ROOT
    ) as ray:
        yield ray.url


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path, ray_url: str) -> Iterator[dict]:
    run_dir = tmp_path_factory.mktemp("triton")
    with local_triton(deployments("triton", run_dir / "deployments.yaml", checkpoint), run_dir) as triton:
        made: dict[str, ModelClient] = {
            "ray": RayServeClient(ray_url, SERVICE),
            "triton": TritonClient(triton.grpc_address, SERVICE, decoupled=True),
        }
        yield made
        for client in made.values():
            client.close()


def test_chunks_arrive_in_order_and_add_up_to_the_whole(clients: dict[str, ModelClient]) -> None:
    wholes = {}
    for backend, client in clients.items():
        parts = list(client.predict_stream(request(seed=3), TIMEOUT_S))
        assert [final for final, _ in parts] == [False] * len(PHRASES) + [True], backend
        chunks = [TtsGestureChunk.FromString(payload) for _, payload in parts[:-1]]
        whole = TtsGestureResponse.FromString(parts[-1][1])
        assert [(c.index, c.text) for c in chunks] == list(enumerate(PHRASES)), backend
        audio = np.concatenate([samples(c.audio.data) for c in chunks])
        np.testing.assert_array_equal(audio, samples(whole.audio.data))
        assert whole.audio_s == pytest.approx(len(audio) / 8000)
        assert [c.start_s for c in chunks] == pytest.approx(np.cumsum([0] + [c.audio_s for c in chunks[:-1]]))
        for field in ("body", "face", "translation", "foot_contact"):
            assert sum(getattr(c, field).frames for c in chunks) == getattr(whole, field).frames, field
            joined = b"".join(getattr(c, field).data_f32 for c in chunks)
            assert joined == getattr(whole, field).data_f32, field
        assert abs(whole.body.frames - whole.audio_s * 30) <= 0.5
        assert [p.phoneme for c in chunks for p in c.phonemes] == [p.phoneme for p in whole.phonemes]
        # A direct call (no stream) answers the same whole utterance.
        assert TtsGestureResponse.FromString(client.predict(request(seed=3), TIMEOUT_S)) == whole
        wholes[backend] = whole
    # The same checkpoint on one thread computes the same utterance on either backend.
    assert wholes["ray"] == wholes["triton"]


BAD = [
    (lambda: request(""), "text is empty"),
    (lambda: request("a" * 601), "text is 601 characters long; at most 600"),
    (lambda: request("Hello ☃"), "cannot read these characters: '☃'"),
    (lambda: request(voice="nobody"), "unknown voice 'nobody'; voices: tiny-en, tiny-zh"),
    (lambda: request(language="fr"), "language 'fr' is not supported"),
    (lambda: request(voice="tiny-zh", language="en"), "voice 'tiny-zh' speaks zh, not en"),
]


@pytest.mark.parametrize("backend", ["ray", "triton"])
@pytest.mark.parametrize(
    ("make", "reason"), BAD, ids=["empty", "too-long", "unreadable", "voice", "language", "mismatch"]
)
def test_bad_input_is_refused_before_any_chunk_with_the_reason(
    clients: dict[str, ModelClient], backend: str, make, reason: str
) -> None:
    received = []
    with pytest.raises(InvalidRequest, match=reason):
        for part in clients[backend].predict_stream(make(), TIMEOUT_S):
            received.append(part)
    assert received == []


def test_ray_serve_answers_bad_input_with_422_and_the_reason(ray_url: str) -> None:
    response = httpx.post(
        f"{ray_url}/{SERVICE}/predict_stream", content=request("Hello ☃"), timeout=TIMEOUT_S
    )
    assert response.status_code == 422
    assert "cannot read these characters: '☃'" in response.json()["error"]
