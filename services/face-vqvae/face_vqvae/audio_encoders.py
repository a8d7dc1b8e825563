"""Speech encoders for stage 2 (Whisper, HuBERT, wav2vec2) behind one interface, plus 25 fps frame pairing."""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from face_vqvae.config import AudioEncoderConfig

SAMPLE_RATE = 16000
# Whisper windows encoded together: enough to batch a request group, few enough to bound activation memory.
WHISPER_WINDOWS_PER_PASS = 8


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

    def encode_batch(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """Clips of any lengths -> one [1, Ta_i, hidden_size] each; one at a time unless overridden."""
        return [self(wave) for wave in waves]

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
        """Also the positional table: Whisper's is a fixed sinusoid that Whisper itself never trains."""
        layers = self.audiomodel.layers
        return [self.audiomodel.conv1, self.audiomodel.conv2, self.audiomodel.embed_positions] + [
            layers[i] for i in frozen_layers if i < len(layers)
        ]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [N] at 16 kHz -> [1, N // 320, H] at 50 Hz."""
        return self.encode_batch([wave])[0]

    def encode_batch(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """All windows of all clips in shared encoder passes; windows are independent, so this equals
        encoding the clips one by one (up to float rounding), and it is faster than that on CPU."""
        chunks = [[w[i : i + self.window] for i in range(0, w.shape[0], self.window)] for w in waves]
        flat = [c for clip in chunks for c in clip]
        mel = self.log_mel(
            [c.detach().cpu().float().numpy() for c in flat], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features.to(waves[0].device, next(self.audiomodel.parameters()).dtype)
        hidden = torch.cat(
            [
                self.audiomodel(mel[i : i + WHISPER_WINDOWS_PER_PASS]).last_hidden_state
                for i in range(0, len(flat), WHISPER_WINDOWS_PER_PASS)
            ]
        )
        kept = [h[: c.shape[0] // self.samples_per_frame] for h, c in zip(hidden, flat, strict=True)]
        starts = np.cumsum([0] + [len(clip) for clip in chunks])
        return [torch.cat(kept[a:b])[None] for a, b in zip(starts[:-1], starts[1:], strict=True)]


def _load_whisper_folder(path: Path) -> nn.Module:
    """A WhisperEncoder from a transformers folder (full model or encoder alone) or a CTranslate2 folder."""
    from safetensors.torch import load_file
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if (path / "model.bin").is_file():
        from shared.encoders.whisper import load_whisper_encoder

        return load_whisper_encoder(path)
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


def shorten_whisper_window(encoder: nn.Module, window_s: int) -> nn.Module:
    """The same Whisper encoder on `window_s`-second windows: its first positions, as whisper.cpp's audio_ctx.

    Whisper was trained on 30 s windows only; a shorter window changes the features a little (less padding
    to attend over) and cuts the cost, which is quadratic in the window in attention and linear elsewhere.
    """
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = copy.deepcopy(encoder.config)
    positions = window_s * SAMPLE_RATE // (160 * encoder.conv1.stride[0] * encoder.conv2.stride[0])
    if positions > config.max_source_positions:
        raise ValueError(f"window_s {window_s} exceeds the encoder's {config.max_source_positions} positions")
    config.max_source_positions = positions
    state = encoder.state_dict()
    state["embed_positions.weight"] = state["embed_positions.weight"][:positions]
    shortened = WhisperEncoder(config)
    shortened.load_state_dict(state, strict=True)
    return shortened.train(encoder.training)


def _pretrained_audiomodel(config: AudioEncoderConfig, model_class: type, config_class: type) -> nn.Module:
    """The network named by `path`, `pretrained` or, failing both, a random one from `random`."""
    if config.path is not None and config.name == "whisper":
        return _load_whisper_folder(Path(config.path))
    if config.path is not None:
        return model_class.from_pretrained(config.path, local_files_only=True)
    if config.pretrained == "whisper-base":
        from shared.encoders.whisper import load_whisper_encoder

        return load_whisper_encoder()
    return model_class(config_class(**config.random))


def build_audio_encoder(config: AudioEncoderConfig) -> AudioEncoder:
    """The encoder named in the config: from its local folder or importer, or randomly initialised."""
    import transformers
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    registry = {
        "hubert": (HubertAudioEncoder, transformers.HubertModel, transformers.HubertConfig),
        "wav2vec2": (HubertAudioEncoder, transformers.Wav2Vec2Model, transformers.Wav2Vec2Config),
        "whisper": (WhisperAudioEncoder, WhisperEncoder, transformers.WhisperConfig),
    }
    wrapper, model_class, config_class = registry[config.name]
    audiomodel = _pretrained_audiomodel(config, model_class, config_class)
    if config.window_s is not None:
        audiomodel = shorten_whisper_window(getattr(audiomodel, "encoder", audiomodel), config.window_s)
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
