"""Log-Mel front-end (Slaney filterbank, 8 ms hop), GlobalMVN statistics and SpecAugment shapes."""

import math

import pytest
import torch
from asr_sactc.frontend import DefaultFrontend, mel_filterbank
from asr_sactc.layers.global_mvn import GlobalMVN
from asr_sactc.layers.specaug import SpecAug


def test_slaney_filterbank_shape_and_unit_area():
    fb = mel_filterbank(16000, 512, 80, 0.0, 8000.0)
    assert fb.shape == (80, 257)
    assert (fb >= 0).all()
    # Slaney normalisation gives every triangle unit area in Hz; wide (high) filters resolve it well.
    bin_hz = 8000 / 256
    areas = fb.sum(dim=1) * bin_hz
    assert areas[40:].sub(1.0).abs().max() < 0.02


def test_pure_tone_peaks_in_the_matching_mel_band():
    frontend = DefaultFrontend()
    t = torch.arange(16000) / 16000
    feats, lengths = frontend(torch.sin(2 * math.pi * 1000.0 * t)[None], torch.tensor([16000]))
    assert feats.shape == (1, 16000 // 128 + 1, 80) and lengths.tolist() == [126]
    peak = int(feats[0, 10:-10].mean(0).argmax())
    # 1000 Hz is 15 Slaney mels; the 82 filter edges span 0..45.25 mels evenly.
    centres = torch.linspace(0, 15 + 27 * math.log(8) / math.log(6.4), 82)[1:-1]
    assert abs(peak - int((centres - 15).abs().argmin())) <= 1


def test_padded_frames_are_zero():
    feats, lengths = DefaultFrontend(n_mels=40)(torch.randn(2, 4000), torch.tensor([4000, 2000]))
    assert lengths.tolist() == [32, 16]
    assert (feats[1, 16:] == 0).all() and (feats[1, :16] != 0).any()


def test_global_mvn_normalises_with_set_stats():
    x = 3.0 + 2.0 * torch.randn(4, 50, 8)
    mvn = GlobalMVN(8)
    flat = x.reshape(-1, 8)
    mvn.set_stats(flat.sum(0), (flat**2).sum(0), flat.size(0))
    y, _ = mvn(x, torch.tensor([50, 50, 50, 50]))
    assert y.reshape(-1, 8).mean(0).abs().max() < 1e-4
    assert y.reshape(-1, 8).std(0, unbiased=False).sub(1).abs().max() < 1e-3
    assert [k for k, _ in mvn.named_buffers()] == ["mean", "std"]


def test_specaug_keeps_shape_and_masks_something():
    torch.manual_seed(0)
    aug = SpecAug(
        freq_mask_width_range=(5, 6), num_freq_mask=1, time_mask_width_range=(10, 11), num_time_mask=1
    )
    x = torch.randn(2, 60, 40) + 5.0
    y, lengths = aug(x, torch.tensor([60, 45]))
    assert y.shape == x.shape and lengths.tolist() == [60, 45]
    assert ((y == 0).all(dim=2).sum(dim=1) >= 10).all()  # one 10-frame time mask per utterance
    assert (y[1, 45:] == 0).all()  # warping stays inside each utterance


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_time_warp_modes_run(mode: str):
    aug = SpecAug(time_warp_mode=mode, apply_freq_mask=False, apply_time_mask=False)
    y, _ = aug(torch.randn(1, 30, 8), torch.tensor([30]))
    assert y.shape == (1, 30, 8)
