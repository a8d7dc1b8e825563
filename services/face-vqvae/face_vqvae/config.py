"""The face-vqvae model configuration: one pydantic object, read from configs/{tiny,full,official}.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, model_validator

# 3DMEAD training identities, in the order of the official split files (`datasets/mead-splits-pred/*`):
# the identity one-hot index is the position in this list, so the order is part of the checkpoint.
MEAD_IDENTITIES: tuple[str, ...] = (
    "M003",
    "M005",
    "M007",
    "M009",
    "M011",
    "M012",
    "M013",
    "M019",
    "M022",
    "M023",
    "M024",
    "M025",
    "M026",
    "M027",
    "M028",
    "M029",
    "M030",
    "M031",
    "W009",
    "W011",
    "W014",
    "W015",
    "W016",
    "W018",
    "W019",
    "W021",
    "W023",
    "W024",
    "W025",
    "W026",
    "W028",
    "W029",
)
# Emotion index = position (the 3DMEAD file names carry this index).
MEAD_EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "surprised",
    "fear",
    "disgusted",
    "angry",
    "contempt",
)

# The service folder: configs/ and checkpoints/ beside the package (settings.assets_dir can move them).
SERVICE_DIR = Path(__file__).resolve().parent.parent
CONFIG_DIR = SERVICE_DIR / "configs"


class ModelConfig(BaseModel):
    """Sizes of the two stages; defaults are the paper's (`configs/model/*.yaml` upstream)."""

    latent_dim: int = Field(256, description="width of z, the Transformers and the Conv1d blocks")
    num_heads: int = 8
    intermediate_size: int = Field(384, description="MLP width inside each Transformer layer")
    encoder_layers: int = 6
    decoder_layers: int = 6
    predictor_layers: int = 12
    n_embed: int = Field(256, description="codebook entries")
    zquant_dim: int = Field(128, description="codebook entry width; latent_dim must be a multiple")
    beta: float = Field(0.25, description="commitment weight of the VQ loss")
    dropout: float = Field(0.1, description="dropout after the sinusoidal positional encoding")
    max_len: int = Field(5000, description="longest sequence the positional table covers, in 25 fps frames")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.latent_dim % self.zquant_dim:
            raise ValueError("latent_dim must be a multiple of zquant_dim (the quantizer cuts z into strips)")
        if self.latent_dim % self.num_heads:
            raise ValueError("latent_dim must be divisible by num_heads")
        return self


class AudioEncoderConfig(BaseModel):
    """Which pretrained speech encoder feeds the feature predictor, and how much of it trains."""

    name: Literal["whisper", "hubert", "wav2vec2"] = "whisper"
    path: Path | None = Field(
        None,
        description="local transformers folder (Whisper: also a CTranslate2 folder); None: `pretrained`, "
        "else a random encoder built from `random`",
    )
    pretrained: Literal["whisper-base"] | None = Field(
        None, description="Whisper-base from the project's importer (shared.encoders.whisper): no folder"
    )
    window_s: int | None = Field(
        None,
        gt=0,
        description="Whisper only: window length in seconds (the pretrained one is 30); a shorter window "
        "truncates the positional table and cuts the cost, the features then differ from 30 s windows",
    )
    random: dict[str, Any] = Field(
        default_factory=dict, description="transformers config kwargs for a randomly initialised encoder"
    )
    finetune: bool = Field(True, description="train the encoder in stage 2 (except the frozen parts below)")
    frozen_layers: list[int] = Field([0, 1], description="Transformer layers kept frozen when fine-tuning")

    @model_validator(mode="after")
    def _check(self) -> AudioEncoderConfig:
        if self.name != "whisper" and (self.pretrained or self.window_s):
            raise ValueError("audio_encoder.pretrained and window_s apply to the whisper encoder only")
        return self

    @property
    def has_weights(self) -> bool:
        """True when the encoder comes from pretrained weights rather than a random initialisation."""
        return self.path is not None or self.pretrained is not None


class StyleConfig(BaseModel):
    identities: list[str] = Field(default_factory=lambda: list(MEAD_IDENTITIES))
    emotions: list[str] = Field(default_factory=lambda: list(MEAD_EMOTIONS))
    intensities: int = Field(3, description="intensity levels: 0 low, 1 medium, 2 high")


class LimitsConfig(BaseModel):
    """Request limits the predictor enforces (violations are the caller's fault: 4xx)."""

    min_audio_s: float = 0.25
    max_audio_s: float = 60.0
    max_samples: int = 10
    max_temperature: float = 2.0


class TrainConfig(BaseModel):
    """Optimiser settings per stage (upstream: AdamW 1e-4 for stage 1, Adam 1e-5 for stage 2)."""

    lr_stage1: float = 1e-4
    lr_stage2: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    max_epochs: int = 201
    patience: int = Field(5, description="validation checks without a better monitor value before stopping")
    recipe: Literal["official", "project"] = Field(
        "official",
        description="checkpoint selection. official: upstream's, exactly: the monitor is a running average "
        "never reset, the last check is kept (last.ckpt, both as stage 2's prior and for evaluation), and "
        "the frozen prior's dropout stays on while stage 2 trains. project: early stopping on each check's "
        "mean validation total, the best check is kept, the frozen prior stays in eval mode in stage 2",
    )


class FaceVqvaeConfig(BaseModel):
    layout: Literal["flame-53", "arkit-52"] = "flame-53"
    fps: float = Field(25.0, description="motion frame rate")
    sample_rate: int = Field(16000, description="audio rate every encoder expects")
    model: ModelConfig = ModelConfig()
    audio_encoder: AudioEncoderConfig = AudioEncoderConfig()
    style: StyleConfig = StyleConfig()
    limits: LimitsConfig = LimitsConfig()
    train: TrainConfig = TrainConfig()

    @classmethod
    def from_yaml(cls, path: str | Path, config_dir: Path = CONFIG_DIR) -> FaceVqvaeConfig:
        """Read a YAML file; a bare name (`tiny`, `full`, `demo`, `official`) means the file in config_dir."""
        path = Path(path)
        if not path.suffix and not path.exists():
            path = Path(config_dir) / f"{path}.yaml"
        return cls.model_validate(yaml.safe_load(path.read_text()) or {})
