"""The asr-sactc Predictor: checkpoint resolution, request checks with reasons, windowed batched decoding."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from asr_sactc.config import build_model, build_tokenizer, load_config
from asr_sactc.predictor import AsrSactcPredictor, loudest_frame_dbfs
from asr_sactc.settings import SERVICE_DIR, NoCheckpointError, load_settings
from orate.v1.common_pb2 import Audio
from orate.v1.models_pb2 import AsrSactcRequest

from shared.media import encode_wav
from shared.serving.predictor import InvalidRequest

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
TINY = {"allow_random_init": True, "decode": "greedy", "num_threads": 1, "init_seed": 3}


def wav(seconds: float, rate: int = 16000, channels: int = 1, level: float = 0.3) -> bytes:
    """A voiced, amplitude-modulated tone (not speech, but loud enough to pass the silence check)."""
    t = np.arange(int(seconds * rate)) / rate
    wave = level * np.sin(2 * np.pi * 160 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    buffer = io.BytesIO()
    sf.write(buffer, np.repeat(wave[:, None], channels, axis=1).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def request(data: bytes, beam_size: int = 0) -> AsrSactcRequest:
    return AsrSactcRequest(audio=Audio(data=data, media_type="audio/wav"), beam_size=beam_size)


@pytest.fixture(scope="module")
def predictor() -> AsrSactcPredictor:
    model = AsrSactcPredictor(**TINY, window_s=2.0, window_search_s=0.5, max_audio_s=30.0)
    model.load()
    return model


def test_a_checkpoint_is_required_unless_random_init_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORATE_ASR_SACTC__CHECKPOINT", raising=False)
    with pytest.raises(NoCheckpointError, match="ORATE_ASR_SACTC__CHECKPOINT"):
        AsrSactcPredictor()
    with pytest.raises(NoCheckpointError, match="does not exist"):
        AsrSactcPredictor(checkpoint="/nonexistent/model.pth")
    assert AsrSactcPredictor(allow_random_init=True).model_path is None


def test_settings_come_from_the_environment_under_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORATE_ASR_SACTC__MAX_AUDIO_S", "12")
    monkeypatch.setenv("ORATE_ASR_SACTC__DECODE", "greedy")
    settings = load_settings(max_audio_s=30)
    assert (settings.max_audio_s, settings.decode) == (30, "greedy")
    with pytest.raises(ValueError, match="window_search_s"):
        load_settings(window_s=4, window_search_s=2)


def test_a_train_output_folder_loads_by_path_and_by_name(tmp_path: Path) -> None:
    config = load_config(SERVICE_DIR / "configs" / "tiny.yaml")
    torch.manual_seed(0)
    model = build_model(config, len(build_tokenizer(config).token_list))
    folder = tmp_path / "checkpoints" / "mine"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(model.state_dict(), folder / "last.pth")
    by_path = AsrSactcPredictor(checkpoint=str(folder), decode="greedy")
    by_name = AsrSactcPredictor(checkpoint="mine", assets_dir=str(tmp_path), decode="greedy")
    assert by_path.model_path == by_name.model_path == folder / "last.pth"
    assert by_path.config_path == folder / "config.yaml"
    by_path.load()
    weights = by_path.recognizer.model.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


BAD: list[tuple[bytes, int, str]] = [
    (b"%PDF-1.4 not audio at all", 0, "not an audio file"),
    (b"", 0, "not an audio file"),
    (wav(0.1), 0, "at least 0.2 s"),
    (wav(31.0), 0, "at most 30 s"),
    (wav(1.0, level=0.0), 0, "silent"),
    (wav(1.0, level=3e-4), 0, r"silent: its loudest 50 ms is -7\d dBFS"),
    (wav(1.0, rate=4000), 0, "sample rate 4000 Hz is too low"),
    (wav(1.0), 21, "beam_size 21 out of range"),
    (wav(1.0), -1, "beam_size -1 out of range"),
]


@pytest.mark.parametrize(
    ("data", "beam", "reason"),
    BAD,
    ids=["pdf", "empty", "short", "long", "zeros", "quiet", "4khz", "beam-high", "beam-negative"],
)
def test_bad_requests_are_invalid_with_the_reason(
    predictor: AsrSactcPredictor, data: bytes, beam: int, reason: str
) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        predictor.check(request(data, beam))


def test_other_rates_and_stereo_are_accepted_and_resampled(predictor: AsrSactcPredictor) -> None:
    for data in (wav(1.5, rate=8000), wav(1.5, rate=44100, channels=2)):
        predictor.check(request(data))
        (response,) = predictor.predict([request(data)])
        assert response.audio_s == pytest.approx(1.5, abs=1e-3)


def test_long_audio_is_windowed_and_the_sot_text_matches_the_segments(predictor: AsrSactcPredictor) -> None:
    (response,) = predictor.predict([request(wav(5.0))])
    assert response.audio_s == pytest.approx(5.0)
    spans = sorted({(s.start_s, s.end_s) for s in response.speakers})
    # Random weights may emit nothing for a window; the windows that spoke tile part of the 5 s.
    assert all(end - start <= 2.0 + 1e-9 for start, end in spans) and spans
    assert [p.strip() for p in response.sot_text.split("$")] == [s.text for s in response.speakers]
    assert all(s.speaker.startswith("spk") and s.text for s in response.speakers)


def test_a_batch_answers_each_request_as_alone(predictor: AsrSactcPredictor) -> None:
    requests = [request(wav(1.0)), request(wav(3.1, rate=22050)), request(wav(0.6), beam_size=4)]
    together = predictor.predict(requests)
    alone = [predictor.predict([r])[0] for r in requests]
    assert [r.sot_text for r in together] == [r.sot_text for r in alone]
    assert [r.audio_s for r in together] == pytest.approx([1.0, 3.1, 0.6], abs=1e-3)


def test_loudest_frame_level() -> None:
    wave = np.zeros(16000, dtype=np.float32)
    wave[8000:8800] = 0.1
    assert loudest_frame_dbfs(wave, 16000) == pytest.approx(-20.0, abs=0.01)
    assert loudest_frame_dbfs(np.zeros(10, dtype=np.float32), 16000) == -np.inf


def test_with_the_vad_non_speech_gets_no_words_and_speech_is_decoded_in_its_windows() -> None:
    gated = AsrSactcPredictor(**TINY, vad="silero", window_s=4.0, window_search_s=1.0)
    gated.load()
    # The tone (a voiced pitch, amplitude-modulated at a syllable rate) passes the silence check, yet holds
    # no speech: nothing is decoded, so even random weights cannot put words in the transcript.
    (tone,) = gated.predict([request(wav(5.0))])
    assert (list(tone.speakers), tone.sot_text, tone.audio_s) == ([], "", pytest.approx(5.0))
    assert tone.no_speech
    # Silence is an answer too (a flagged empty transcript), not a bad request, once the VAD is on.
    silence = request(encode_wav(np.zeros(32000, np.float32), 16000))
    gated.check(silence)
    (quiet,) = gated.predict([silence])
    assert quiet.no_speech and not quiet.speakers
    if not LIBRIVOX.is_file():
        pytest.skip("apt-get install pocketsphinx-testdata")
    speech, rate = sf.read(LIBRIVOX, dtype="float32")
    padded = np.concatenate([np.zeros(3 * rate, np.float32), speech, np.zeros(3 * rate, np.float32)])
    windows = gated._plan(padded, rate)
    assert windows and all(w.end - w.start <= 4 * rate for w in windows)
    assert 2 * rate < windows[0].start and windows[-1].end < len(padded) - 2 * rate
    (heard,) = gated.predict([request(encode_wav(padded, rate))])
    assert not heard.no_speech
