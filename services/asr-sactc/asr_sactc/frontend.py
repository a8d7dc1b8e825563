"""Log-Mel front-end equal to ESPnet's `DefaultFrontend` defaults, on torch.stft (no torchaudio/librosa)."""

import math

import torch

from asr_sactc.model.mask import make_pad_mask


def _hz_to_mel(freq: torch.Tensor) -> torch.Tensor:
    """Slaney mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = freq / f_sp
    log = min_log_mel + torch.log(freq.clamp(min=min_log_hz) / min_log_hz) / logstep
    return torch.where(freq >= min_log_hz, log, linear)


def _mel_to_hz(mels: torch.Tensor) -> torch.Tensor:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(
        mels >= min_log_mel, min_log_hz * torch.exp(logstep * (mels - min_log_mel)), f_sp * mels
    )


def mel_filterbank(fs: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """Slaney-normalised triangular filters as `librosa.filters.mel` builds them: [n_mels, n_fft//2 + 1]."""
    fft_freqs = torch.linspace(0, fs / 2, n_fft // 2 + 1, dtype=torch.float64)
    mel_f = _mel_to_hz(
        torch.linspace(
            float(_hz_to_mel(torch.tensor(fmin, dtype=torch.float64))),
            float(_hz_to_mel(torch.tensor(fmax, dtype=torch.float64))),
            n_mels + 2,
            dtype=torch.float64,
        )
    )
    fdiff = mel_f.diff()
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.float()


class LogMel(torch.nn.Module):
    """Power spectrum → log Mel; the filterbank is ESPnet's persistent `melmat` buffer [F, n_mels]."""

    def __init__(self, fs: int, n_fft: int, n_mels: int, fmin: float | None, fmax: float | None) -> None:
        super().__init__()
        fmin = 0.0 if fmin is None else fmin
        fmax = fs / 2 if fmax is None else fmax
        self.register_buffer("melmat", mel_filterbank(fs, n_fft, n_mels, fmin, fmax).T.contiguous())

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        """[B, T, F] power spectrum → [B, T, n_mels] natural-log Mel energies (floored at 1e-10)."""
        return torch.matmul(power, self.melmat).clamp(min=1e-10).log()


class DefaultFrontend(torch.nn.Module):
    """STFT (Hann, centred, reflect-padded) → power → log-Mel, ESPnet `DefaultFrontend` semantics.

    Args:
        fs: sample rate in Hz (16 kHz).
        n_fft: FFT size (512).
        win_length: window length in samples (None = n_fft).
        hop_length: hop in samples (128 = 8 ms).
        n_mels: Mel bins (80).
        fmin: lowest filter frequency in Hz (None = 0).
        fmax: highest filter frequency in Hz (None = fs/2).
    """

    def __init__(
        self,
        fs: int = 16000,
        n_fft: int = 512,
        win_length: int | None = None,
        hop_length: int = 128,
        n_mels: int = 80,
        fmin: float | None = None,
        fmax: float | None = None,
    ) -> None:
        super().__init__()
        self.fs = fs
        self.n_fft = n_fft
        self.win_length = n_fft if win_length is None else win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.logmel = LogMel(fs, n_fft, n_mels, fmin, fmax)

    def output_size(self) -> int:
        """Feature size (n_mels)."""
        return self.n_mels

    def forward(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N] waveform in [-1, 1], [B] samples → [B, T, n_mels] log-Mel at the hop rate, [B] frames."""
        window = torch.hann_window(self.win_length, dtype=speech.dtype, device=speech.device)
        spec = torch.stft(
            self._reflect_ends(speech, speech_lengths),
            self.n_fft,
            self.hop_length,
            self.win_length,
            window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        ).transpose(1, 2)
        feats = self.logmel(spec.real**2 + spec.imag**2)
        feats_lengths = speech_lengths // self.hop_length + 1
        return feats.masked_fill(make_pad_mask(feats_lengths, feats.size(1))[:, :, None], 0.0), feats_lengths

    def _reflect_ends(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> torch.Tensor:
        """A copy of the batch whose shorter utterances continue past their end with their own reflection.

        The last centred frames of an utterance reach n_fft/2 samples past its end; alone, torch.stft
        reflect-pads there, in a batch it would see the next utterance's padding. Reflecting each end
        makes every utterance's features in a batch equal to its features alone (ESPnet feeds the zeros).
        """
        half, total = self.n_fft // 2, speech.size(1)
        if bool((speech_lengths >= total).all()):
            return speech
        speech = speech.clone()
        for i, length in enumerate(speech_lengths.tolist()):
            # reflect excludes the edge sample, as torch.stft's pad_mode="reflect" does.
            span = min(half, total - length, length - 1)
            if span > 0:
                speech[i, length : length + span] = speech[i, length - 1 - span : length - 1].flip(0)
        return speech
