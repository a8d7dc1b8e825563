"""Speech encoders for stage 2 (Whisper, HuBERT, wav2vec2) behind one interface, plus 25 fps frame pairing."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from face_vqvae.config import AudioEncoderConfig

SAMPLE_RATE = 16000


class AudioEncoder(nn.Module, ABC):
    """Raw 16 kHz speech [N] -> features [1, Ta, hidden_size] at `frame_rate` Hz (50 Hz for all three).

    The pretrained network is `audiomodel`, the name upstream checkpoints use
    (`feature_extractor.audiomodel.*`).
    """

    audiomodel: nn.Module
    frame_rate: float
    hidden_size: int

    @abstractmethod
    def frozen_modules(self, frozen_layers: list[int]) -> list[nn.Module]:
        """The parts kept frozen when fine-tuning (upstream: CNN front end, projection, layers 0-1)."""

    @abstractmethod
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [N] at 16 kHz -> features [1, Ta, hidden_size] at frame_rate."""

    def set_trainable(self, finetune: bool, frozen_layers: list[int]) -> None:
        self.audiomodel.requires_grad_(finetune)
        if finetune:
            for module in self.frozen_modules(frozen_layers):
                module.requires_grad_(False)

    def output_dim(self, fps: float) -> int:
        """Width of the paired features the predictor takes: hidden_size x frames per motion frame."""
        return self.hidden_size * math.ceil(self.frame_rate / fps - 1e-9)


class HubertAudioEncoder(AudioEncoder):
    """HuBERT (or wav2vec2: same front end and layer names) over utterance-normalised speech.

    Input normalisation follows upstream: min-max amplitude scaling to [-1, 1] at load time (audio I/O),
    then the Wav2Vec2 processor's zero-mean unit-variance normalisation, done here.
    """

    def __init__(self, audiomodel: nn.Module) -> None:
        super().__init__()
        self.audiomodel = audiomodel
        config = audiomodel.config
        self.hidden_size = config.hidden_size
        self.frame_rate = SAMPLE_RATE / math.prod(config.conv_stride)

    def frozen_modules(self, frozen_layers: list[int]) -> list[nn.Module]:
        layers = self.audiomodel.encoder.layers
        return [self.audiomodel.feature_extractor, self.audiomodel.feature_projection] + [
            layers[i] for i in frozen_layers if i < len(layers)
        ]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [N] at 16 kHz -> [1, Ta, H], Ta = frames of the conv front end (about N / 320)."""
        wave = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + 1e-7)
        return self.audiomodel(wave[None]).last_hidden_state


class WhisperAudioEncoder(AudioEncoder):
    """A transformers Whisper encoder (512-d for base) on log-mel windows of its fixed length (30 s for base).

    Whisper only accepts full windows, so speech is cut into windows, each padded with silence the way Whisper
    was trained, and the frames that cover real audio (one per 320 samples) are kept and concatenated.
    """

    def __init__(self, audiomodel: nn.Module) -> None:
        super().__init__()
        from transformers import WhisperFeatureExtractor

        if hasattr(audiomodel, "get_encoder"):
            audiomodel = audiomodel.get_encoder()
        self.audiomodel = audiomodel
        config = audiomodel.config
        self.hidden_size = config.d_model
        self.samples_per_frame = 160 * audiomodel.conv1.stride[0] * audiomodel.conv2.stride[0]
        self.frame_rate = SAMPLE_RATE / self.samples_per_frame
        self.window = config.max_source_positions * self.samples_per_frame
        if self.window % SAMPLE_RATE:
            raise ValueError("max_source_positions must make a whole-second window (a multiple of 50)")
        self.log_mel = WhisperFeatureExtractor(
            feature_size=config.num_mel_bins, chunk_length=self.window // SAMPLE_RATE
        )

    def frozen_modules(self, frozen_layers: list[int]) -> list[nn.Module]:
        layers = self.audiomodel.layers
        return [self.audiomodel.conv1, self.audiomodel.conv2] + [
            layers[i] for i in frozen_layers if i < len(layers)
        ]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [N] at 16 kHz -> [1, N // 320, H] at 50 Hz."""
        chunks = [wave[i : i + self.window] for i in range(0, wave.shape[0], self.window)]
        mel = self.log_mel(
            [c.detach().cpu().float().numpy() for c in chunks], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features.to(wave.device, next(self.audiomodel.parameters()).dtype)
        hidden = self.audiomodel(mel).last_hidden_state
        kept = [h[: c.shape[0] // self.samples_per_frame] for h, c in zip(hidden, chunks, strict=True)]
        return torch.cat(kept)[None]


def _load_whisper_folder(path: Path) -> nn.Module:
    """A WhisperEncoder from a transformers folder holding a full model or an encoder alone."""
    from safetensors.torch import load_file
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    encoder = WhisperEncoder(WhisperConfig.from_pretrained(path, local_files_only=True))
    state: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(file))
    for file in sorted(path.glob("pytorch_model*.bin")) if not state else []:
        state.update(torch.load(file, map_location="cpu", weights_only=True))
    prefix = next((p for p in ("model.encoder.", "encoder.", "") if f"{p}conv1.weight" in state), None)
    if prefix is None:
        raise FileNotFoundError(f"no Whisper encoder weights (conv1.weight) in {path}")
    encoder.load_state_dict(
        {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, strict=True
    )
    return encoder


def build_audio_encoder(config: AudioEncoderConfig) -> AudioEncoder:
    """The encoder named in the config: from its local folder, or randomly initialised from `random`."""
    import transformers
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    registry = {
        "hubert": (HubertAudioEncoder, transformers.HubertModel, transformers.HubertConfig),
        "wav2vec2": (HubertAudioEncoder, transformers.Wav2Vec2Model, transformers.Wav2Vec2Config),
        "whisper": (WhisperAudioEncoder, WhisperEncoder, transformers.WhisperConfig),
    }
    wrapper, model_class, config_class = registry[config.name]
    if config.path is None:
        audiomodel = model_class(config_class(**config.random))
    elif config.name == "whisper":
        audiomodel = _load_whisper_folder(Path(config.path))
    else:
        audiomodel = model_class.from_pretrained(config.path, local_files_only=True)
    encoder = wrapper(audiomodel)
    encoder.set_trainable(config.finetune, config.frozen_layers)
    return encoder


def pair_frames(
    features: torch.Tensor, frame_rate: float, fps: float, num_frames: int | None = None
) -> torch.Tensor:
    """[B, Ta, H] at frame_rate -> [B, T, H*k] at fps, k = ceil(frame_rate / fps) consecutive frames joined.

    As upstream `resample_input`: when frame_rate is a multiple of fps, leftover frames (an odd last 50 Hz
    frame) are dropped and the result is cut to num_frames motion frames; otherwise the features are linearly
    interpolated to exactly num_frames * k frames first (num_frames defaults to the duration in frames).
    """
    ratio = frame_rate / fps
    k = math.ceil(ratio - 1e-9)
    if abs(ratio - round(ratio)) < 1e-9:
        t = features.shape[1] // k if num_frames is None else min(features.shape[1] // k, num_frames)
        features = features[:, : t * k]
    else:
        t = num_frames if num_frames is not None else round(features.shape[1] / ratio)
        features = F.interpolate(features.transpose(1, 2), size=t * k, mode="linear", align_corners=True)
        features = features.transpose(1, 2)
    b, _, h = features.shape
    return features.reshape(b, t, h * k)
