"""The variance adaptor (FastSpeech2, ming024 `model/modules.py`) with FastTalker's onset predictor.

Duration, pitch and energy are predicted per phoneme (FastSpeech2-demo's `phoneme_level`), from the whole
sentence; pitch and energy are quantised into `n_bins` linear bins whose embeddings are added to the
hidden states. The length regulator repeats each phoneme's state for its duration in mel frames. The
onset predictor runs per mel frame on the regulated states, causally (left-padded convolutions), and gives
the probability that a speech onset falls on the frame. Upstream names: `duration_predictor`,
`pitch_predictor`, `energy_predictor` (each `conv_layer.{conv1d_1.conv,layer_norm_1,conv1d_2.conv,
layer_norm_2}` + `linear_layer`), `pitch_bins`, `energy_bins`, `pitch_embedding`, `energy_embedding`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from tts_gesture.config import VarianceEmbeddingConfig, VariancePredictorConfig
from tts_gesture.model.padding import pad_for


@dataclass
class FrameFeatures:
    """Everything the causal decoders read, per mel frame: the shared rhythmic features.

    hidden [B, T, H] (phoneme state + speaker + pitch and energy embeddings), pitch and energy [B, T]
    (normalised, of the frame's phoneme), log_duration [B, T] (log(1 + frames) of the frame's phoneme),
    progress [B, T] (position inside its phoneme, 0 at the first frame, < 1), mel_mask [B, T] (True at
    padding), mel_lens [B].
    """

    hidden: torch.Tensor
    pitch: torch.Tensor
    energy: torch.Tensor
    log_duration: torch.Tensor
    progress: torch.Tensor
    mel_mask: torch.Tensor
    mel_lens: torch.Tensor

    def rhythm(self, onset: torch.Tensor) -> torch.Tensor:
        """[B, T, H + 5]: hidden ⊕ pitch, energy, onset probability, log-duration, progress."""
        scalars = torch.stack([self.pitch, self.energy, onset, self.log_duration, self.progress], dim=-1)
        return torch.cat([self.hidden, scalars], dim=-1)


@dataclass
class VariancePredictions:
    """Phoneme-level predictions [B, L] (log_duration is log(1 + frames)) and the durations used [B, L]."""

    log_duration: torch.Tensor
    pitch: torch.Tensor
    energy: torch.Tensor
    duration: torch.Tensor


class Conv(nn.Module):
    """Upstream's Conv1d wrapper on [B, T, C] tensors (parameters under `conv`), centred or causal."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.transpose(1, 2)
        return self.conv(pad_for(self.conv, y, self.causal)).transpose(1, 2)


class VariancePredictor(nn.Module):
    """2 x (conv, ReLU, LayerNorm, dropout) then a linear layer to one value per step."""

    def __init__(self, hidden: int, config: VariancePredictorConfig, causal: bool = False) -> None:
        super().__init__()
        f, k = config.filter_size, config.kernel_size
        self.conv_layer = nn.Sequential(
            OrderedDict(
                [
                    ("conv1d_1", Conv(hidden, f, k, causal)),
                    ("relu_1", nn.ReLU()),
                    ("layer_norm_1", nn.LayerNorm(f)),
                    ("dropout_1", nn.Dropout(config.dropout)),
                    ("conv1d_2", Conv(f, f, k, causal)),
                    ("relu_2", nn.ReLU()),
                    ("layer_norm_2", nn.LayerNorm(f)),
                    ("dropout_2", nn.Dropout(config.dropout)),
                ]
            )
        )
        self.linear_layer = nn.Linear(f, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, H], mask [B, T] (True at padding) -> [B, T] (0 at padding).

        Each convolution's input is zeroed at padding (upstream lets padding leak into the last valid
        steps), so an utterance predicts the same alone and in a padded batch.
        """
        for layer in self.conv_layer:
            x = layer(x.masked_fill(mask.unsqueeze(-1), 0.0) if isinstance(layer, Conv) else x)
        return self.linear_layer(x).squeeze(-1).masked_fill(mask, 0.0)


class LengthRegulator(nn.Module):
    """Repeats phoneme i's state duration[i] times; also says where each frame sits inside its phoneme."""

    def forward(
        self, x: torch.Tensor, duration: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, L, H], duration [B, L] frames (integers, padding 0) ->
        (frames [B, T, H], phoneme index of each frame [B, T], progress [B, T], mel_lens [B])."""
        duration = duration.long().clamp(min=0)
        mel_lens = duration.sum(dim=1)
        total = max(int(mel_lens.max()), 1)
        ends = duration.cumsum(dim=1)  # [B, L]: first frame after each phoneme
        frame = torch.arange(total, device=x.device)
        index = torch.searchsorted(ends, frame.expand(x.shape[0], -1).contiguous(), right=True)
        index = index.clamp(max=x.shape[1] - 1)
        start = ends.gather(1, index) - duration.gather(1, index)
        progress = (frame - start) / duration.gather(1, index).clamp(min=1)
        frames = x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        pad = frame.unsqueeze(0) >= mel_lens.unsqueeze(1)
        return frames.masked_fill(pad.unsqueeze(-1), 0.0), index, progress.masked_fill(pad, 0.0), mel_lens


class VarianceAdaptor(nn.Module):
    def __init__(
        self, hidden: int, predictor: VariancePredictorConfig, embedding: VarianceEmbeddingConfig
    ) -> None:
        super().__init__()
        self.duration_predictor = VariancePredictor(hidden, predictor)
        self.length_regulator = LengthRegulator()
        self.pitch_predictor = VariancePredictor(hidden, predictor)
        self.energy_predictor = VariancePredictor(hidden, predictor)
        self.onset_predictor = VariancePredictor(hidden, predictor, causal=True)
        n_bins = embedding.n_bins
        self.pitch_bins = nn.Parameter(
            torch.linspace(*embedding.pitch_range, n_bins - 1), requires_grad=False
        )
        self.energy_bins = nn.Parameter(
            torch.linspace(*embedding.energy_range, n_bins - 1), requires_grad=False
        )
        self.pitch_embedding = nn.Embedding(n_bins, hidden)
        self.energy_embedding = nn.Embedding(n_bins, hidden)

    def forward(
        self,
        x: torch.Tensor,
        src_mask: torch.Tensor,
        pitch_target: torch.Tensor | None = None,
        energy_target: torch.Tensor | None = None,
        duration_target: torch.Tensor | None = None,
        d_control: float = 1.0,
    ) -> tuple[VariancePredictions, FrameFeatures]:
        """x [B, L, H] encoder states, src_mask [B, L] (True at padding); targets [B, L] teacher-force
        (training), else predictions are used (inference)."""
        log_duration = self.duration_predictor(x, src_mask)
        pitch_prediction = self.pitch_predictor(x, src_mask)
        pitch = pitch_prediction if pitch_target is None else pitch_target
        x = x + self.pitch_embedding(torch.bucketize(pitch, self.pitch_bins))
        # As upstream, energy is predicted after the pitch embedding is added.
        energy_prediction = self.energy_predictor(x, src_mask)
        energy = energy_prediction if energy_target is None else energy_target
        x = x + self.energy_embedding(torch.bucketize(energy, self.energy_bins))
        if duration_target is None:
            duration = torch.clamp(torch.round(torch.exp(log_duration) - 1) * d_control, min=0)
            duration = duration.masked_fill(src_mask, 0).long()
        else:
            duration = duration_target.long()
        frames, index, progress, mel_lens = self.length_regulator(x, duration)
        pad = torch.arange(frames.shape[1], device=x.device).unsqueeze(0) >= mel_lens.unsqueeze(1)

        def per_frame(values: torch.Tensor) -> torch.Tensor:
            return values.gather(1, index).masked_fill(pad, 0.0)

        features = FrameFeatures(
            hidden=frames,
            pitch=per_frame(pitch),
            energy=per_frame(energy),
            log_duration=per_frame(torch.log1p(duration.float())),
            progress=progress,
            mel_mask=pad,
            mel_lens=mel_lens,
        )
        return VariancePredictions(log_duration, pitch_prediction, energy_prediction, duration), features

    def predict_onset(self, features: FrameFeatures) -> torch.Tensor:
        """Onset logits [B, T] per mel frame, causal (frame t reads frames <= t)."""
        return self.onset_predictor(features.hidden, features.mel_mask)
