"""Mel analysis as HiFi-GAN's `meldataset.mel_spectrogram`: reflect-pad (n_fft - hop) / 2, STFT with a Hann
window, magnitude, Slaney mel filters (librosa), log of the magnitude clamped at 1e-5. With `center`, frames
are centred on multiples of the hop (reflect-pad n_fft / 2), as Mellotron's TacotronSTFT (ttskit's MelGAN)."""

from __future__ import annotations

import functools

import librosa
import torch
import torch.nn.functional as F

from tts_gesture.config import AudioConfig


@functools.lru_cache(maxsize=8)
def _mel_basis(config: AudioConfig) -> torch.Tensor:
    basis = librosa.filters.mel(
        sr=config.sampling_rate,
        n_fft=config.n_fft,
        n_mels=config.num_mels,
        fmin=config.fmin,
        fmax=config.fmax,
    )
    return torch.from_numpy(basis).float()


def mel_spectrogram(wave: torch.Tensor, config: AudioConfig) -> torch.Tensor:
    """wave [B, N] in [-1, 1] at config.sampling_rate -> log mel [B, N // hop (+ 1 if centred), num_mels]."""
    pad = config.n_fft // 2 if config.center else (config.n_fft - config.hop_size) // 2
    padded = F.pad(wave.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(
        padded,
        config.n_fft,
        hop_length=config.hop_size,
        win_length=config.win_size,
        window=torch.hann_window(config.win_size, device=wave.device, dtype=wave.dtype),
        center=False,
        return_complex=True,
    )
    magnitude = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    mel = _mel_basis(config).to(magnitude) @ magnitude
    return torch.log(torch.clamp(mel, min=1e-5)).transpose(1, 2)
