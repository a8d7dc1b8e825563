"""ttskit's pretrained MelGAN (`ttskit/resource/model/melgan.kuangdd.pt`, ttskit 0.3.8 on PyPI) as a vocoder.

The wheel ships the whole pickled generator (seungwonpark/melgan's layout), trained on Mandarin speech at
22.05 kHz with Mellotron's analysis: n_fft 1024, hop 256, Hann, centred frames, 80 Slaney mels 0-8 kHz, log
magnitude clamped at 1e-5 (`audio.center: true` here). On English speech its Whisper-base round trip costs
about 5 WER points (results/melgan_english.json). It is centred, not causal: audio at frame t reads a few
frames ahead, which a streaming caller covers by vocoding each phrase whole.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn

LOG_SILENCE = -11.5129  # log(1e-5): the analysis' floor
TAIL_FRAMES = 10  # ttskit's inference pads 10 silent frames so the last real frames render cleanly


def packaged_melgan_path() -> Path:
    spec = importlib.util.find_spec("ttskit")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("vocoder.kind ttskit-melgan needs the ttskit package (pip install ttskit==0.3.8)")
    return Path(spec.submodule_search_locations[0]) / "resource" / "model" / "melgan.kuangdd.pt"


class PackagedMelGAN(nn.Module):
    """mel [B, 80, T] (log, centred analysis) -> waveform [B, 1, T * 256] in [-1, 1]. Frozen."""

    def __init__(self, num_mels: int, hop_size: int) -> None:
        super().__init__()
        if (num_mels, hop_size) != (80, 256):
            raise ValueError("ttskit's MelGAN takes 80 mels at hop 256 (22.05 kHz)")
        path = packaged_melgan_path()
        # The pickle names its classes as the top-level package `melgan` (ttskit puts its own folder on
        # sys.path), and aukit, imported on the way, wants `sounddevice` for playback only.
        sys.modules.setdefault("sounddevice", types.ModuleType("sounddevice"))
        if str(path.parents[2]) not in sys.path:
            sys.path.append(str(path.parents[2]))
        self.melgan = torch.load(path, map_location="cpu", weights_only=False)
        self.melgan.requires_grad_(False)
        self.hop_size = hop_size

    def train(self, mode: bool = True) -> PackagedMelGAN:
        # Always inference mode: ttskit's Generator.eval() has its own signature and nothing here trains it.
        nn.Module.train(self.melgan, False)
        self.training = mode
        return self

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        tail = mel.new_full((mel.shape[0], mel.shape[1], TAIL_FRAMES), LOG_SILENCE)
        audio = self.melgan(torch.cat([mel, tail], dim=2))
        return audio[..., : mel.shape[2] * self.hop_size]
