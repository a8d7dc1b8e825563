"""Whisper's log-Mel front-end: each utterance zero-padded to the model's window (30 s) and encoded alone."""

import math

import torch

from shared.encoders.whisper import SAMPLE_RATE, whisper_log_mel

# Whisper's Mel hop (160 samples) and its encoder's stride-2 convolution: one encoder frame per 20 ms.
SAMPLES_PER_FRAME = 320


class WhisperFrontend(torch.nn.Module):
    """[B, N] 16 kHz waveforms → [B, n_mels, 100·chunk_s] Whisper log-Mel, plus each utterance's valid
    encoder frames (ceil(N / 320), the frames whose 20 ms hop starts inside the audio).

    Features are computed per utterance on the padded window (Whisper's dynamic-range clamp looks at the
    whole window), so an utterance's features are the same in any batch. No parameters.

    Args:
        n_mels: Mel bins (80 for base and tiny.en).
        chunk_s: window length in seconds (Whisper's 30; smaller only for random-weight test models).
    """

    def __init__(self, n_mels: int = 80, chunk_s: int = 30, fs: int = SAMPLE_RATE) -> None:
        super().__init__()
        if fs != SAMPLE_RATE:
            raise ValueError(f"Whisper hears {SAMPLE_RATE} Hz audio, got fs={fs}")
        self.fs = fs
        self.n_mels = n_mels
        self.chunk_s = chunk_s

    def output_size(self) -> int:
        """Feature size (n_mels)."""
        return self.n_mels

    def forward(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """speech [B, N] in [-1, 1], speech_lengths [B] samples → feats [B, n_mels, 100·chunk_s],
        valid encoder frames [B]. Utterances longer than chunk_s raise (window them first)."""
        waves = speech.detach().float().cpu().numpy()
        feats = torch.cat(
            [
                whisper_log_mel(wave[: int(n)], self.n_mels, self.chunk_s)
                for wave, n in zip(waves, speech_lengths.tolist(), strict=True)
            ]
        ).to(speech.device)
        frames = torch.tensor(
            [math.ceil(int(n) / SAMPLES_PER_FRAME) for n in speech_lengths.tolist()], device=speech.device
        )
        return feats, frames
