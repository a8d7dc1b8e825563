"""face-vqvae serving settings: env ORATE_FACE_VQVAE__<KEY>, under the deployment's predictor_config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from face_vqvae.config import SERVICE_DIR


class FaceVqvaeSettings(BaseModel):
    """What the predictor loads; every key is also a deployment `predictor_config` key."""

    checkpoint: Path | None = Field(
        None,
        description="stage-2 checkpoint: a file, a folder holding stage2.pt, or a bare name in "
        "<assets_dir>/checkpoints (`demo`); required unless allow_random_init",
    )
    config: str | None = Field(
        None,
        description="model config, a YAML path or a name in <assets_dir>/configs; None: the config stored "
        "in the checkpoint (train.py stores it), else `full`",
    )
    audio_encoder: Literal["whisper", "hubert", "wav2vec2"] | None = Field(
        None, description="override the config's speech encoder"
    )
    audio_encoder_path: Path | None = Field(
        None, description="override the encoder's weights folder (transformers; Whisper: or CTranslate2)"
    )
    max_audio_s: float | None = Field(None, gt=0, description="override limits.max_audio_s")
    device: str = Field("cpu", description="torch device")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None keeps torch's")
    trust_pickle: bool = Field(False, description="allow Lightning pickles (files from a trusted source)")
    allow_random_init: bool = Field(
        False, description="serve random weights when no checkpoint is set: tests and benchmarks only"
    )
    init_seed: int = Field(0, description="seed of the random weights, so every replica gets the same ones")
    assets_dir: Path = Field(SERVICE_DIR, description="folder whose configs/ and checkpoints/ resolve names")

    def checkpoint_file(self) -> Path | None:
        """The checkpoint file the settings name, or None."""
        if self.checkpoint is None:
            return None
        path = self.checkpoint
        if not path.suffix and not path.exists():
            path = self.assets_dir / "checkpoints" / path
        return path / "stage2.pt" if path.is_dir() else path


class _Env(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORATE_", env_nested_delimiter="__", extra="ignore")

    face_vqvae: FaceVqvaeSettings = Field(default_factory=FaceVqvaeSettings)


def load_settings(**overrides: Any) -> FaceVqvaeSettings:
    """The environment's block (ORATE_FACE_VQVAE__CHECKPOINT=...) with `overrides` on top, read now."""
    from_env = _Env().face_vqvae.model_dump(exclude_unset=True)
    return FaceVqvaeSettings.model_validate({**from_env, **overrides})
