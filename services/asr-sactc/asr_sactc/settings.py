"""asr-sactc serving settings: env ORATE_ASR_SACTC__<KEY>, under the deployment's predictor_config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The service folder: configs/ and checkpoints/ beside the package (settings.assets_dir can move them).
SERVICE_DIR = Path(__file__).resolve().parent.parent
# Weights a train.py output folder may hold, in order of preference (ESPnet's names).
MODEL_FILES = ("valid.acc.ave.pth", "valid.acc.best.pth", "last.pth")
CONFIG_FILE = "config.yaml"


class NoCheckpointError(ValueError):
    """No usable checkpoint is configured and random weights were not asked for."""


class AsrSactcSettings(BaseModel):
    """What the predictor loads and the limits it enforces; every key is also a `predictor_config` key."""

    checkpoint: Path | None = Field(
        None,
        description="a train.py output folder (config.yaml and valid.acc.best.pth or last.pth), a .pth file "
        "with config.yaml beside it, or a bare name in <assets_dir>/checkpoints (`demo`); required unless "
        "allow_random_init",
    )
    config: str | None = Field(
        None,
        description="model config, a YAML path or a name in <assets_dir>/configs (`tiny`, `demo`); None: the "
        "checkpoint's config.yaml, or `tiny` with random weights",
    )
    decode: Literal["joint", "attention", "ctc", "greedy"] = Field(
        "joint",
        description="joint CTC/attention beam search (the paper's), attention beam search without CTC, CTC "
        "prefix beam search over the whole "
        "vocabulary (Table I's CTC rows; slow with large vocabularies) or greedy CTC (ignores beam_size)",
    )
    max_beam_size: int = Field(20, ge=1, description="largest beam_size a request may ask for")
    min_audio_s: float = Field(0.2, ge=0, description="shorter audio is rejected")
    max_audio_s: float = Field(600.0, gt=0, description="longer audio is rejected (the header is read first)")
    min_sample_rate: int = Field(
        8000, ge=1, description="lower rates are rejected: resampled to 16 kHz they keep too little of speech"
    )
    silence_dbfs: float = Field(
        -60.0, description="audio whose loudest 50 ms is quieter than this (RMS, dBFS) is rejected as silent"
    )
    window_s: float = Field(20.0, gt=0, description="longer audio is decoded in windows of at most this")
    window_search_s: float = Field(
        4.0,
        gt=0,
        description="each window cut falls on the quietest 50 ms within this span around its target",
    )
    max_batch_windows: int = Field(8, ge=1, description="windows encoded together in one model call")
    vad: Literal["off", "silero"] = Field(
        "off",
        description="silero: decode only what Silero VAD calls speech (windows cut in its pauses; audio "
        "without speech gets an empty transcript); off: decode everything in energy-cut windows",
    )
    vad_weights: Path | None = Field(
        None, description="Silero VAD npm tarball or .onnx; None: the sources cache (shared.vad)"
    )
    device: str = Field("cpu", description="torch device")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None keeps torch's")
    allow_random_init: bool = Field(
        False, description="serve random weights when no checkpoint is set: tests and benchmarks only"
    )
    init_seed: int = Field(0, description="seed of the random weights, so every replica gets the same ones")
    assets_dir: Path = Field(SERVICE_DIR, description="folder whose configs/ and checkpoints/ resolve names")

    @model_validator(mode="after")
    def _check(self) -> AsrSactcSettings:
        # A cut may land window_search_s / 2 after its target; half a window keeps every window non-trivial.
        if self.window_search_s >= self.window_s / 2:
            raise ValueError(f"window_search_s ({self.window_search_s}) must be below window_s / 2")
        if self.min_audio_s > self.max_audio_s:
            raise ValueError(f"min_audio_s ({self.min_audio_s}) is above max_audio_s ({self.max_audio_s})")
        return self

    def model_files(self) -> tuple[Path, Path | None]:
        """(config YAML, weights or None for random init) that the settings name."""
        weights = self._weights()
        if self.config is not None:
            config = Path(self.config)
            if not config.suffix and not config.exists():
                config = self.assets_dir / "configs" / f"{self.config}.yaml"
        elif weights is not None:
            config = weights.parent / CONFIG_FILE
        else:
            config = self.assets_dir / "configs" / "tiny.yaml"
        if not config.is_file():
            raise FileNotFoundError(f"asr-sactc config {config} does not exist")
        return config, weights

    def _weights(self) -> Path | None:
        if self.checkpoint is None:
            if self.allow_random_init:
                return None
            raise NoCheckpointError(
                "asr-sactc has no checkpoint: set ORATE_ASR_SACTC__CHECKPOINT (or predictor_config."
                "checkpoint) to a train.py output folder or to `demo`; allow_random_init serves random "
                "weights, for tests only"
            )
        path = self.checkpoint
        if not path.suffix and not path.exists():
            path = self.assets_dir / "checkpoints" / path
        if path.is_dir():
            found = [path / name for name in MODEL_FILES if (path / name).is_file()]
            if not found:
                raise NoCheckpointError(f"checkpoint folder {path} holds none of {', '.join(MODEL_FILES)}")
            return found[0]
        if not path.is_file():
            raise NoCheckpointError(f"checkpoint {path} does not exist")
        return path


class _Env(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORATE_", env_nested_delimiter="__", extra="ignore")

    asr_sactc: AsrSactcSettings = Field(default_factory=AsrSactcSettings)


def load_settings(**overrides: Any) -> AsrSactcSettings:
    """The environment's block (ORATE_ASR_SACTC__CHECKPOINT=...) with `overrides` on top, read now."""
    from_env = _Env().asr_sactc.model_dump(exclude_unset=True)
    return AsrSactcSettings.model_validate({**from_env, **overrides})
