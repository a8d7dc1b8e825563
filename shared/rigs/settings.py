"""Rig settings: where the user's own FLAME/SMPL-X files live and where built rigs are cached."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "orate" / "rigs"


class RigSettings(BaseModel):
    """A settings block: services add `rigs: RigSettings` to their settings; env ORATE_RIGS__<KEY>."""

    flame_model: Path | None = Field(
        None, description="the user's licensed FLAME file (generic_model.pkl, flame2023.pkl or an .npz of it)"
    )
    flame_arkit_map: Path | None = Field(
        None, description="optional .npy [52, 50]: FLAME expression per unit ARKit weight, fitted by the user"
    )
    smplx_model: Path | None = Field(
        None, description="the user's licensed SMPL-X file (SMPLX_NEUTRAL.npz or .pkl)"
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, description="where face rigs built from anny are kept (.npz)"
    )
    anny_cache_dir: Path | None = Field(
        None,
        description=(
            "anny's model-data cache; None: $ANNY_CACHE_DIR, else ~/.cache/anny. Building writes 0.9 GB,"
            " later loads read only its build_compact_model_data_*.safetensors (69 MB)"
        ),
    )


class _RigEnv(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORATE_", env_nested_delimiter="__", extra="ignore")

    rigs: RigSettings = Field(default_factory=RigSettings)


def rig_settings() -> RigSettings:
    """The rig block from the environment (ORATE_RIGS__FLAME_MODEL=...), read when called."""
    return _RigEnv().rigs
