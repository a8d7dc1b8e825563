"""HiFi-GAN's generator (Kong et al. 2020; jik876/hifi-gan `models.py`) with the public state-dict names.

`conv_pre`, `ups.N`, `resblocks.N.convs1.M` / `convs2.M` (ResBlock1) or `convs.M` (ResBlock2), `conv_post`,
each weight-normalised as `weight_g` / `weight_v` (+ `bias`), so a public `generator_*.pth.tar`
(`{"generator": state_dict}`) loads strictly (`checkpoints.load_hifigan_generator`).

Padding is applied explicitly (padding.pad_for): centred reproduces the public generator exactly; causal
pads convolutions on the left and keeps the first L*u samples of each transposed convolution, so samples
before (t + 1) * hop never depend on mel frames after t. The public checkpoints were trained centred.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from tts_gesture.config import VocoderConfig
from tts_gesture.model.padding import pad_for

LRELU_SLOPE = 0.1


def _weight_norm(module: nn.Module) -> nn.Module:
    """The legacy weight_norm: it names its parameters weight_g / weight_v, as the public checkpoints do
    (the parametrizations API would rename them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(module)


def _init_weights(module: nn.Module) -> None:
    """Upstream's init_weights: N(0, 0.01) on every conv."""
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        module.weight.data.normal_(0.0, 0.01)


class ResBlock1(nn.Module):
    """Three dilated convs (convs1), each followed by a dilation-1 conv (convs2), residual after each pair."""

    def __init__(self, channels: int, kernel_size: int, dilation: list[int], causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.convs1 = nn.ModuleList(
            _weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=d)) for d in dilation
        )
        self.convs2 = nn.ModuleList(
            _weight_norm(nn.Conv1d(channels, channels, kernel_size)) for _ in dilation
        )
        self.convs1.apply(_init_weights)
        self.convs2.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c1(pad_for(c1, F.leaky_relu(x, LRELU_SLOPE), self.causal))
            xt = c2(pad_for(c2, F.leaky_relu(xt, LRELU_SLOPE), self.causal))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """Two dilated convs (convs), residual after each (HiFi-GAN V3)."""

    def __init__(self, channels: int, kernel_size: int, dilation: list[int], causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.convs = nn.ModuleList(
            _weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=d)) for d in dilation
        )
        self.convs.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = c(pad_for(c, F.leaky_relu(x, LRELU_SLOPE), self.causal)) + x
        return x


RESBLOCKS: dict[str, type[ResBlock1] | type[ResBlock2]] = {"1": ResBlock1, "2": ResBlock2}


class Generator(nn.Module):
    def __init__(self, num_mels: int, config: VocoderConfig) -> None:
        super().__init__()
        self.causal = config.causal
        self.upsample_rates = list(config.upsample_rates)
        self.num_kernels = len(config.resblock_kernel_sizes)
        ch = config.upsample_initial_channel
        self.conv_pre = _weight_norm(nn.Conv1d(num_mels, ch, 7))
        self.ups = nn.ModuleList(
            _weight_norm(nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u))
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True))
        )
        resblock = RESBLOCKS[config.resblock]
        self.resblocks = nn.ModuleList(
            resblock(ch // 2 ** (i + 1), k, d, self.causal)
            for i in range(len(self.ups))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True)
        )
        self.conv_post = _weight_norm(nn.Conv1d(ch // 2 ** len(self.ups), 1, 7))
        self.ups.apply(_init_weights)
        self.conv_post.apply(_init_weights)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, num_mels, T] (log magnitude) -> waveform [B, 1, T * hop] in [-1, 1]."""
        x = self.conv_pre(pad_for(self.conv_pre, mel, self.causal))
        for i, (up, rate) in enumerate(zip(self.ups, self.upsample_rates, strict=True)):
            x = self._upsample(up, rate, F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        x = self.conv_post(pad_for(self.conv_post, F.leaky_relu(x), self.causal))
        return torch.tanh(x)

    def _upsample(self, up: nn.ConvTranspose1d, rate: int, x: torch.Tensor) -> torch.Tensor:
        """Unpadded transposed conv gives (L - 1) * u + k samples; keep L * u of them: upstream's
        padding (k - u) / 2 trims both ends (centred), the causal mode trims the end only."""
        y = up(x)
        trim = (up.kernel_size[0] - rate) // 2
        start = 0 if self.causal else trim
        return y[..., start : start + x.shape[-1] * rate]
