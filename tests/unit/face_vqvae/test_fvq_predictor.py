"""FaceVqvaePredictor on the tiny config: request checks with reasons, batching, seeds, output layout."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from face_vqvae.predictor import FaceVqvaePredictor
from orate.v1.common_pb2 import Audio
from orate.v1.models_pb2 import FaceVqvaeRequest

from shared.serving.predictor import InvalidRequest


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    """A short noisy tone as 16-bit WAV bytes."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.shape)
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def predictor() -> FaceVqvaePredictor:
    import torch

    torch.manual_seed(0)
    predictor = FaceVqvaePredictor(config="tiny", allow_random_init=True)
    predictor.load()
    return predictor


def _request(seconds: float = 1.0, **fields) -> FaceVqvaeRequest:
    values = {"identity": "M003", "emotion": "happy", "intensity": 1, "num_samples": 2, "temperature": 0.2}
    values.update(fields)
    return FaceVqvaeRequest(audio=Audio(data=wav_bytes(seconds), media_type="audio/wav"), **values)


def _samples(response) -> list[np.ndarray]:
    return [np.frombuffer(m.data_f32, dtype="<f4").reshape(m.frames, m.dims) for m in response.samples]


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (FaceVqvaeRequest(audio=Audio(data=b"not audio")), "not an audio file"),
        (_request(0.1), "at least"),
        (_request(11.0), "at most"),
        (_request(identity="M999"), "unknown identity 'M999'"),
        (_request(emotion="bored"), "unknown emotion 'bored'"),
        (_request(intensity=3), "intensity 3 out of range"),
        (_request(intensity=-1), "intensity -1 out of range"),
        (_request(temperature=2.5), "temperature 2.5 out of range"),
        (_request(temperature=-0.1), "temperature -0.1 out of range"),
        (_request(temperature=float("nan")), "temperature nan out of range"),
        (_request(num_samples=5), "num_samples 5 out of range"),
        (_request(num_samples=-1), "num_samples -1 out of range"),
    ],
)
def test_check_rejects_with_reason(predictor: FaceVqvaePredictor, request_, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason.replace("(", r"\(")):
        predictor.check(request_)


def test_check_accepts_a_good_request(predictor: FaceVqvaePredictor) -> None:
    predictor.check(_request())


def test_predict_batches_and_is_reproducible(predictor: FaceVqvaePredictor) -> None:
    batch = [
        _request(1.0, seed=1),
        _request(1.0, seed=1, identity="W009", emotion="sad"),
        _request(0.6, seed=2, num_samples=0, temperature=0.0),
    ]
    responses = predictor.predict(batch)
    assert [len(r.samples) for r in responses] == [2, 2, 1]
    first = responses[0].samples[0]
    assert (first.layout, first.fps, first.frames, first.dims) == ("flame-53", 25.0, 25, 53)
    assert responses[2].samples[0].frames == 15
    alone = predictor.predict([batch[0]])[0]
    for batched, single in zip(_samples(responses[0]), _samples(alone), strict=True):
        np.testing.assert_allclose(batched, single, atol=1e-5)
    # Different seeds give different samples; argmin decoding repeats itself.
    again = predictor.predict([_request(1.0, seed=3)])[0]
    assert not np.array_equal(_samples(again)[0], _samples(alone)[0])
    argmin = predictor.predict([_request(1.0, num_samples=2, temperature=0.0)])[0]
    np.testing.assert_array_equal(*_samples(argmin))
