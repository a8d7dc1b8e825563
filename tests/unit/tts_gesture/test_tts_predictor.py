"""TtsGesturePredictor: checkpoint resolution, bad input as InvalidRequest with the reason, the stream's
chunks (in order, each phrase's audio and motion) laid end to end equal the response, and the committed
deploy entries build a streaming predictor."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from orate.v1.common_pb2 import Motion
from orate.v1.models_pb2 import TtsGestureChunk, TtsGestureRequest, TtsGestureResponse
from tts_gesture.predictor import TtsGesturePredictor
from tts_gesture.testing import save_tiny_checkpoint

from shared.serving.deployments import DeploymentSpec, build_predictor
from shared.serving.predictor import InvalidRequest, stream_parts

DEPLOY = Path(__file__).resolve().parents[3] / "services" / "tts-gesture" / "deploy"
TEXT = "Hello there, my friend. This works!"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tts") / "tiny")


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> TtsGesturePredictor:
    loaded = TtsGesturePredictor(checkpoint=str(checkpoint), num_threads=1, max_characters=100)
    loaded.load()
    return loaded


def samples(wav: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(wav), dtype="int16")[0]


def frames(motion: Motion) -> np.ndarray:
    return np.frombuffer(motion.data_f32, dtype="<f4").reshape(motion.frames, motion.dims)


def test_a_bare_name_resolves_under_the_service_checkpoints(tmp_path: Path) -> None:
    save_tiny_checkpoint(tmp_path / "checkpoints" / "demo")
    assert TtsGesturePredictor(assets_dir=str(tmp_path)).checkpoint == tmp_path / "checkpoints" / "demo"
    with pytest.raises(FileNotFoundError, match=r"missing is not a checkpoint folder \(it needs config.yaml"):
        TtsGesturePredictor(checkpoint="missing", assets_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (TtsGestureRequest(text=""), "text is empty"),
        (TtsGestureRequest(text="a" * 101), "at most 100 are allowed"),
        (TtsGestureRequest(text="Hello ☃"), "cannot read these characters: '☃'"),
        (TtsGestureRequest(text="Hello", voice="nobody"), "voices: tiny-en, tiny-zh"),
        (TtsGestureRequest(text="Hello", language="fr"), "speaks en, zh"),
        (TtsGestureRequest(text="Hello", voice="tiny-zh", language="en"), "speaks zh, not en"),
    ],
    ids=["empty", "too-long", "unreadable", "voice", "language", "mismatch"],
)
def test_bad_input_is_an_invalid_request_with_the_reason(predictor, request_, reason) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        predictor.check(request_)


def test_chunks_come_in_order_and_add_up_to_the_response(predictor: TtsGesturePredictor) -> None:
    request = TtsGestureRequest(text=TEXT, seed=7)
    predictor.check(request)
    parts = list(stream_parts(predictor, request))
    assert [p.final for p in parts] == [False, False, False, True]
    chunks: list[TtsGestureChunk] = [p.message for p in parts[:-1]]
    whole: TtsGestureResponse = parts[-1].message
    assert [c.index for c in chunks] == [0, 1, 2]
    assert [c.text for c in chunks] == ["Hello there,", "my friend.", "This works!"]
    assert (whole.voice, whole.language) == ("tiny-en", "en")
    np.testing.assert_array_equal(
        np.concatenate([samples(c.audio.data) for c in chunks]), samples(whole.audio.data)
    )
    assert sf.info(io.BytesIO(whole.audio.data)).samplerate == 8000
    assert whole.audio_s == pytest.approx(sum(c.audio_s for c in chunks))
    assert [c.start_s for c in chunks] == pytest.approx(
        [0, chunks[0].audio_s, chunks[0].audio_s + chunks[1].audio_s]
    )
    for field, layout, dims in [
        ("body", "smplx-55-rot6d", 330),
        ("face", "flame-100", 100),
        ("translation", "translation-3", 3),
        ("foot_contact", "foot-contact-4", 4),
    ]:
        motion = getattr(whole, field)
        assert (motion.layout, motion.dims, motion.fps) == (layout, dims, 30)
        assert abs(motion.frames - whole.audio_s * 30) <= 0.5
        np.testing.assert_array_equal(
            np.concatenate([frames(getattr(c, field)) for c in chunks]), frames(motion)
        )
    assert [p.phoneme for c in chunks for p in c.phonemes] == [p.phoneme for p in whole.phonemes]
    assert whole.phonemes[0].start_s == 0 and whole.phonemes[-1].end_s == pytest.approx(whole.audio_s)
    # A direct (non-streaming) call answers the same whole response.
    assert predictor.predict([request]) == [whole]


def test_voice_from_language_and_open_rig_layouts(tmp_path: Path) -> None:
    open_rig = TtsGesturePredictor(checkpoint=str(save_tiny_checkpoint(tmp_path / "open", "open-rig")))
    open_rig.load()
    *_, whole = open_rig.predict_stream(TtsGestureRequest(text="你好。", language="zh"))
    assert (whole.voice, whole.language) == ("tiny-zh", "zh")
    assert (whole.body.layout, whole.body.dims) == ("open-rig-104-rot6d", 624)
    assert (whole.face.layout, whole.face.dims) == ("arkit-52", 52)


@pytest.mark.parametrize("backend", ["ray", "triton"])
def test_the_deploy_entries_build_a_streaming_predictor(backend: str, checkpoint: Path) -> None:
    (entry,) = yaml.safe_load((DEPLOY / f"{backend}.yaml").read_text())["deployments"]
    assert entry["predictor_config"] == {"checkpoint": "demo", "num_threads": 1}
    entry["predictor_config"] = {**entry["predictor_config"], "checkpoint": str(checkpoint)}
    built = build_predictor(DeploymentSpec.model_validate(entry))
    assert isinstance(built, TtsGesturePredictor) and built.synthesizer is not None
