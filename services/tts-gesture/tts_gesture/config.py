"""The tts-gesture model configuration: one pydantic object, read from configs/{tiny,full}.yaml.

Blocks and keys follow the official configs where one exists, so a user's FastSpeech2 `model.yaml` or
HiFi-GAN `config.json` values carry over: `transformer`, `variance_predictor`, `variance_embedding`
(FastSpeech2, ming024), `vocoder` (HiFi-GAN `config_v1.json`). Every dimension FastTalker's architecture
search varies is a key here (`transformer`, `variance_predictor`, `gesture_decoder`, `vocoder`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

SERVICE_DIR = Path(__file__).resolve().parent.parent
CONFIG_DIR = SERVICE_DIR / "configs"
MOTION_FPS = 30.0


class AudioConfig(BaseModel):
    """Mel analysis (HiFi-GAN `meldataset.mel_spectrogram`: log of the clamped magnitude mel)."""

    model_config = ConfigDict(frozen=True)  # hashable: mel filter banks are cached per analysis

    sampling_rate: int = 22050
    n_fft: int = 1024
    hop_size: int = 256
    win_size: int = 1024
    num_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    center: bool = Field(
        False,
        description="centred frames (torch `center=True`: N // hop + 1 frames), as ttskit's MelGAN was "
        "trained; false is HiFi-GAN's (n_fft - hop) / 2 padding (N // hop frames)",
    )

    @property
    def frame_rate(self) -> float:
        """Mel frames per second (86.13 at 22.05 kHz, hop 256)."""
        return self.sampling_rate / self.hop_size


class TransformerConfig(BaseModel):
    """FastSpeech2 `transformer:` block: phoneme encoder and mel decoder, both stacks of FFT blocks."""

    encoder_layer: int = 4
    encoder_head: int = 2
    encoder_hidden: int = 256
    decoder_layer: int = 6
    decoder_head: int = 2
    decoder_hidden: int = 256
    conv_filter_size: int = 1024
    conv_kernel_size: tuple[int, int] = (9, 1)
    encoder_dropout: float = 0.2
    decoder_dropout: float = 0.2
    max_seq_len: int = Field(1000, description="positions in the sinusoid tables (phonemes or mel frames)")

    @model_validator(mode="after")
    def _check(self) -> TransformerConfig:
        if self.encoder_hidden != self.decoder_hidden:
            raise ValueError("encoder_hidden and decoder_hidden must match (the adaptor passes the width on)")
        for hidden, heads in (
            (self.encoder_hidden, self.encoder_head),
            (self.decoder_hidden, self.decoder_head),
        ):
            if hidden % heads:
                raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        return self


class VariancePredictorConfig(BaseModel):
    """FastSpeech2 `variance_predictor:` block, shared by the duration, pitch, energy and onset predictors."""

    filter_size: int = 256
    kernel_size: int = 3
    dropout: float = 0.5


class VarianceEmbeddingConfig(BaseModel):
    """Pitch and energy are per-phoneme z-scores (FastSpeech2's normalised stats); bins span these ranges."""

    n_bins: int = 256
    pitch_range: tuple[float, float] = (-3.0, 4.0)
    energy_range: tuple[float, float] = (-2.0, 4.0)


class PostNetConfig(BaseModel):
    postnet_embedding_dim: int = 512
    postnet_kernel_size: int = 5
    postnet_n_convolutions: int = 5


class VocoderConfig(BaseModel):
    """The vocoder: a HiFi-GAN generator (`config_v1.json` names and defaults: V1), trained with the model,
    or ttskit's pretrained MelGAN (`kind: ttskit-melgan`, frozen, loaded from the installed wheel; the
    HiFi-GAN keys below are then unused)."""

    kind: Literal["hifigan", "ttskit-melgan"] = "hifigan"
    resblock: Literal["1", "2"] = "1"
    upsample_rates: list[int] = [8, 8, 2, 2]
    upsample_kernel_sizes: list[int] = [16, 16, 4, 4]
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: list[int] = [3, 7, 11]
    resblock_dilation_sizes: list[list[int]] = [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    causal: bool = Field(
        True,
        description="left-only padding, so audio up to mel frame t never depends on later frames; a public "
        "HiFi-GAN checkpoint was trained with centred padding and must run with causal: false",
    )

    @model_validator(mode="after")
    def _check(self) -> VocoderConfig:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True):
            if kernel < rate or (kernel - rate) % 2:
                raise ValueError(f"upsample kernel {kernel} must be >= rate {rate} with an even difference")
        return self


class GestureDecoderConfig(BaseModel):
    """The causal gesture decoder (spec §3.3.4; sizes are choices, defaults = full.yaml, see the README)."""

    num_layers: int = 4
    hidden_size: int = 256
    num_heads: int = 4
    ffn_size: int = 1024
    dropout: float = 0.1
    seed_frames: int = Field(4, description="frames of a given seed pose (EMAGE `pre_frames`)")

    @model_validator(mode="after")
    def _check(self) -> GestureDecoderConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden size {self.hidden_size} is not divisible by {self.num_heads} heads")
        return self


class Speaker(BaseModel):
    """A voice: its index in the speaker embedding is its position in `FastTalkerConfig.speakers`."""

    name: str
    language: Literal["en", "zh"] = "en"


class LossWeights(BaseModel):
    mel: float = 1.0
    postnet_mel: float = 1.0
    duration: float = 1.0
    pitch: float = 1.0
    energy: float = 1.0
    onset: float = 1.0
    rot6d: float = 1.0
    velocity: float = 1.0
    acceleration: float = 1.0
    expression: float = 1.0
    translation: float = 1.0
    foot_contact: float = 0.1
    waveform_mel: float = Field(45.0, description="HiFi-GAN's mel-L1 weight on the vocoder's output")


class TrainConfig(BaseModel):
    """FastSpeech2 defaults: Adam (0.9, 0.98), eps 1e-9, Noam warm-up."""

    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    warm_up_step: int = 4000
    grad_clip_thresh: float = 1.0
    vocoder_segment_frames: int = Field(
        32, description="mel frames per vocoder segment (HiFi-GAN: 8192 samples)"
    )
    loss: LossWeights = LossWeights()


class FastTalkerConfig(BaseModel):
    layout: Literal["smplx", "open-rig"] = Field(
        "smplx", description="motion targets: SMPL-X rot6d + FLAME expression, or the open rig + ARKit-52"
    )
    audio: AudioConfig = AudioConfig()
    speakers: list[Speaker] = [Speaker(name="scott")]
    transformer: TransformerConfig = TransformerConfig()
    variance_predictor: VariancePredictorConfig = VariancePredictorConfig()
    variance_embedding: VarianceEmbeddingConfig = VarianceEmbeddingConfig()
    postnet: PostNetConfig = PostNetConfig()
    vocoder: VocoderConfig = VocoderConfig()
    gesture_decoder: GestureDecoderConfig = GestureDecoderConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _check(self) -> FastTalkerConfig:
        if self.vocoder.kind == "ttskit-melgan" and not self.audio.center:
            raise ValueError("ttskit's MelGAN was trained on centred frames: set audio.center: true")
        if self.vocoder.kind == "hifigan" and math.prod(self.vocoder.upsample_rates) != self.audio.hop_size:
            raise ValueError(
                f"the vocoder upsamples by {math.prod(self.vocoder.upsample_rates)}, "
                f"not the mel hop of {self.audio.hop_size} samples"
            )
        if self.audio.frame_rate < 2 * MOTION_FPS:
            raise ValueError("mel frame rate must be at least twice the 30 fps motion rate (pooling windows)")
        if not self.speakers:
            raise ValueError("at least one speaker is needed")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, config_dir: Path = CONFIG_DIR) -> FastTalkerConfig:
        """Read a YAML file; a bare name (`tiny`, `full`) means the file in config_dir."""
        path = Path(path)
        if not path.suffix and not path.exists():
            path = Path(config_dir) / f"{path}.yaml"
        return cls.model_validate(yaml.safe_load(path.read_text()) or {})
