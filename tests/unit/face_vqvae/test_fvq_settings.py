"""Serving settings: env and predictor_config, checkpoint lookup, the no-checkpoint error, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.loading import NoCheckpointError, build_model, resolve
from face_vqvae.model import build_probtalk3d
from face_vqvae.predictor import FaceVqvaePredictor
from face_vqvae.settings import FaceVqvaeSettings, load_settings


def _save_stage2(path: Path, config: FaceVqvaeConfig) -> torch.nn.Module:
    """A stage-2 checkpoint the way train.py writes it (state dict plus the config dump)."""
    torch.manual_seed(3)
    model = build_probtalk3d(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "config": config.model_dump(mode="json"), "stage": 2}, path)
    return model.eval()


def test_no_checkpoint_is_a_clear_error_not_random_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORATE_FACE_VQVAE__CHECKPOINT", raising=False)
    with pytest.raises(NoCheckpointError, match="ORATE_FACE_VQVAE__CHECKPOINT"):
        FaceVqvaePredictor(config="tiny")


def test_predictor_config_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORATE_FACE_VQVAE__CHECKPOINT", "/models/stage2.pt")
    monkeypatch.setenv("ORATE_FACE_VQVAE__MAX_AUDIO_S", "12.5")
    monkeypatch.setenv("ORATE_FACE_VQVAE__DEVICE", "cuda:1")
    settings = load_settings(device="cpu")
    assert (settings.checkpoint, settings.max_audio_s, settings.device) == (
        Path("/models/stage2.pt"),
        12.5,
        "cpu",
    )
    assert load_settings().device == "cuda:1"


def test_checkpoint_names_and_folders_resolve_to_stage2_files(tmp_path: Path) -> None:
    (tmp_path / "checkpoints" / "demo").mkdir(parents=True)
    assert FaceVqvaeSettings(checkpoint="demo", assets_dir=tmp_path).checkpoint_file() == (
        tmp_path / "checkpoints" / "demo" / "stage2.pt"
    )
    assert FaceVqvaeSettings(checkpoint=tmp_path / "checkpoints" / "demo").checkpoint_file() == (
        tmp_path / "checkpoints" / "demo" / "stage2.pt"
    )
    assert FaceVqvaeSettings(checkpoint=tmp_path / "x.pt").checkpoint_file() == tmp_path / "x.pt"


def test_predictor_serves_a_checkpoint_with_its_stored_config(tmp_path: Path) -> None:
    config = FaceVqvaeConfig.from_yaml("tiny")
    config.layout = "arkit-52"  # differs from tiny.yaml: the stored config must win
    saved = _save_stage2(tmp_path / "run" / "stage2.pt", config)
    predictor = FaceVqvaePredictor(checkpoint=str(tmp_path / "run"), max_audio_s=5.0)
    predictor.load()
    assert predictor.model_config.layout == "arkit-52"
    assert predictor.model_config.limits.max_audio_s == 5.0
    for key, value in saved.state_dict().items():
        assert torch.equal(predictor.model.state_dict()[key], value), key


def test_an_explicit_config_must_match_the_checkpoint(tmp_path: Path) -> None:
    _save_stage2(tmp_path / "stage2.pt", FaceVqvaeConfig.from_yaml("tiny"))
    with pytest.raises(Exception, match="size mismatch|does not match"):
        build_model(*resolve(FaceVqvaeSettings(checkpoint=tmp_path / "stage2.pt", config="demo")))


def test_max_audio_beyond_the_positional_table_is_refused() -> None:
    with pytest.raises(ValueError, match="max_len"):
        resolve(FaceVqvaeSettings(config="tiny", allow_random_init=True, max_audio_s=60.0))


def test_random_weights_are_seeded_and_leave_the_global_generator_alone() -> None:
    settings = FaceVqvaeSettings(config="tiny", allow_random_init=True, init_seed=5)
    state = torch.random.get_rng_state()
    first, second = (build_model(*resolve(settings), init_seed=5) for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value), key
