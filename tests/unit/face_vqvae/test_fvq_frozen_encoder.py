"""A frozen pretrained speech encoder: shorter Whisper windows, cached features, checkpoints without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from face_vqvae import train
from face_vqvae.audio_encoders import build_audio_encoder
from face_vqvae.checkpoints import AUDIO_ENCODER_PREFIX, CheckpointError, has_audio_encoder, read_checkpoint
from face_vqvae.config import AudioEncoderConfig, FaceVqvaeConfig
from face_vqvae.eval import curve_rig
from face_vqvae.layouts import LAYOUTS
from face_vqvae.loading import build_model, resolve
from face_vqvae.model import build_probtalk3d
from face_vqvae.predictor import FaceVqvaePredictor
from face_vqvae.settings import FaceVqvaeSettings
from face_vqvae.train import SpeechFeatures

# A 2 s window (100 positions x 320 samples) like tiny.yaml's random Whisper.
TINY_WHISPER = {
    "d_model": 16,
    "encoder_layers": 1,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "decoder_layers": 1,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 32,
    "num_mel_bins": 80,
    "max_source_positions": 100,
}


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 'pretrained' Whisper saved as a transformers folder."""
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("whisper")
    WhisperModel(WhisperConfig(**TINY_WHISPER)).save_pretrained(folder)
    return folder


def test_a_shorter_whisper_window_keeps_the_first_positions(whisper_folder: Path) -> None:
    full = build_audio_encoder(AudioEncoderConfig(path=whisper_folder))
    short = build_audio_encoder(AudioEncoderConfig(path=whisper_folder, window_s=1))
    assert (full.window, short.window) == (32000, 16000)
    table = short.audiomodel.embed_positions.weight
    assert torch.equal(table, full.audiomodel.embed_positions.weight[:50])
    assert short(torch.randn(24000) * 0.1).shape == (1, 75, 16)  # 1.5 s over two 1 s windows
    with pytest.raises(ValueError, match="exceeds"):
        build_audio_encoder(AudioEncoderConfig(path=whisper_folder, window_s=3))


def test_whisper_only_options_are_refused_for_hubert() -> None:
    with pytest.raises(ValueError, match="whisper encoder only"):
        AudioEncoderConfig(name="hubert", window_s=10)


def test_frozen_features_are_computed_once_per_clip(tiny_model: torch.nn.Module) -> None:
    wave = torch.randn(16000) * 0.1
    frozen, tuned = SpeechFeatures(tiny_model, frozen=True), SpeechFeatures(tiny_model, frozen=False)
    assert frozen(wave, 25) is frozen(wave.clone(), 25)
    assert frozen(wave, 25) is not frozen(wave * 0.5, 25)
    assert tuned(wave, 25) is not tuned(wave, 25)


def _frozen_config(tmp_path: Path, whisper_folder: Path) -> Path:
    config = FaceVqvaeConfig.from_yaml("tiny").model_dump(mode="json")
    config["audio_encoder"] |= {"path": str(whisper_folder), "finetune": False}
    path = tmp_path / "frozen.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _dataset(root: Path) -> None:
    rng = np.random.default_rng(0)
    (root / "param").mkdir(parents=True)
    (root / "wav").mkdir()
    for stem in ("M003_001_0_0", "M003_002_happy_1", "M005_033_0_0"):
        np.save(root / "param" / f"{stem}.npy", rng.uniform(-1, 1, (25, 53)).astype(np.float32))
        sf.write(root / "wav" / f"{stem}.wav", rng.normal(0, 0.1, 16000).astype(np.float32), 16000)


def test_stage2_with_a_frozen_pretrained_encoder_saves_it_out_and_loads_back(
    tmp_path: Path, whisper_folder: Path
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _dataset(data)
    config = str(_frozen_config(tmp_path, whisper_folder))
    common = ["--config", config, "--data", str(data), "--out", str(out), "--epochs", "1", "--device", "cpu"]
    train.main(["--stage", "1", *common])
    train.main(["--stage", "2", *common, "--prior", str(out / "stage1.pt")])
    state, stored = read_checkpoint(out / "stage2.pt")
    assert not has_audio_encoder(state) and stored["audio_encoder"]["path"] == str(whisper_folder)
    predictor = FaceVqvaePredictor(checkpoint=str(out / "stage2.pt"))
    predictor.load()
    pretrained = build_audio_encoder(AudioEncoderConfig(path=whisper_folder)).audiomodel.state_dict()
    served = predictor.model.state_dict()
    for key, value in pretrained.items():
        assert torch.equal(served[AUDIO_ENCODER_PREFIX + key], value), key
    # The same file with a random encoder configured would silently serve noise features: refused.
    random_encoder = FaceVqvaeSettings(checkpoint=out / "stage2.pt", config="tiny")
    with pytest.raises(CheckpointError, match="no speech-encoder weights"):
        build_model(*resolve(random_encoder))


def test_checkpoints_with_the_encoder_still_load_with_a_random_config(tmp_path: Path) -> None:
    config = FaceVqvaeConfig.from_yaml("tiny")
    torch.save({"state_dict": build_probtalk3d(config).state_dict()}, tmp_path / "stage2.pt")
    build_model(*resolve(FaceVqvaeSettings(checkpoint=tmp_path / "stage2.pt", config="tiny")))


def test_arkit_curves_score_without_a_mesh() -> None:
    rig = curve_rig(LAYOUTS["arkit-52"])
    names = LAYOUTS["arkit-52"].channel_names
    assert {names[i] for i in rig["lip"]} >= {"jawOpen", "mouthClose", "mouthFunnel"}
    assert {names[i][:3] for i in rig["upper"]} == {"bro", "eye"}
    assert rig["basis"].shape == (52, 52, 1)
    with pytest.raises(SystemExit, match="--rig"):
        curve_rig(LAYOUTS["flame-53"])
