"""Speech encoders (tiny random Whisper/HuBERT/wav2vec2) and 50 Hz -> 25 fps frame pairing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from face_vqvae.audio_encoders import WhisperAudioEncoder, build_audio_encoder, pair_frames
from face_vqvae.config import AudioEncoderConfig

TINY_HUBERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (32, 32),
    "conv_kernel": (10, 3),
    "conv_stride": (5, 2),
    "num_conv_pos_embeddings": 16,
}
TINY_WHISPER = {
    "d_model": 16,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "decoder_layers": 1,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 32,
    "num_mel_bins": 80,
    "max_source_positions": 50,
}


def test_pairing_joins_consecutive_frames_and_drops_an_odd_last_one() -> None:
    features = torch.arange(7 * 2, dtype=torch.float32).view(1, 7, 2)
    paired = pair_frames(features, 50.0, 25.0)
    assert paired.shape == (1, 3, 4)
    assert paired[0, 1].tolist() == [4.0, 5.0, 6.0, 7.0]
    assert pair_frames(features, 50.0, 25.0, num_frames=2).shape == (1, 2, 4)


def test_pairing_interpolates_when_rates_do_not_divide() -> None:
    features = torch.randn(1, 60, 3)  # 1 s at 60 Hz -> 25 fps, 3 frames joined per motion frame
    assert pair_frames(features, 60.0, 25.0).shape == (1, 25, 9)
    assert pair_frames(features, 60.0, 25.0, num_frames=20).shape == (1, 20, 9)


@pytest.mark.parametrize(
    ("name", "random", "hidden", "rate"),
    [
        ("hubert", TINY_HUBERT, 32, 1600.0),
        ("wav2vec2", TINY_HUBERT, 32, 1600.0),
        ("whisper", TINY_WHISPER, 16, 50.0),
    ],
)
def test_encoders_report_rate_and_width(name: str, random: dict, hidden: int, rate: float) -> None:
    encoder = build_audio_encoder(AudioEncoderConfig(name=name, random=random, frozen_layers=[0]))
    assert encoder.frame_rate == rate
    assert encoder.output_dim(25.0) == hidden * round(rate / 25)
    features = encoder(torch.randn(8000) * 0.1)
    assert features.shape[0] == 1 and features.shape[2] == hidden
    assert abs(features.shape[1] - 0.5 * rate) <= 2
    frozen = encoder.frozen_modules([0])
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert any(p.requires_grad for p in encoder.parameters())


def test_whisper_spans_several_windows_and_keeps_real_frames() -> None:
    encoder = build_audio_encoder(AudioEncoderConfig(name="whisper", random=TINY_WHISPER))
    assert encoder.window == 16000  # 50 positions x 320 samples
    assert encoder(torch.randn(40000) * 0.1).shape == (1, 125, 16)


def test_whisper_loads_from_a_transformers_folder(tmp_path: Path) -> None:
    from transformers import WhisperConfig, WhisperModel

    full = WhisperModel(WhisperConfig(**TINY_WHISPER))
    full.save_pretrained(tmp_path / "full")
    encoder = build_audio_encoder(AudioEncoderConfig(name="whisper", path=tmp_path / "full"))
    assert torch.equal(encoder.audiomodel.conv1.weight, full.encoder.conv1.weight)
    assert isinstance(WhisperAudioEncoder(full), WhisperAudioEncoder)  # a module in memory works too
    full.encoder.save_pretrained(tmp_path / "encoder")
    encoder = build_audio_encoder(AudioEncoderConfig(name="whisper", path=tmp_path / "encoder"))
    assert torch.equal(encoder.audiomodel.layers[1].fc2.weight, full.encoder.layers[1].fc2.weight)


def test_whisper_batch_of_clips_equals_one_clip_at_a_time() -> None:
    torch.manual_seed(0)
    encoder = build_audio_encoder(AudioEncoderConfig(name="whisper", random=TINY_WHISPER)).eval()
    waves = [torch.randn(n) * 0.1 for n in (24000, 6400, 41600)]  # 1.5 s, 0.4 s and 2.6 s: 2 + 1 + 3 windows
    with torch.no_grad():
        together = encoder.encode_batch(waves)
        alone = [encoder(w) for w in waves]
    assert [f.shape[1] for f in together] == [75, 20, 130]
    for a, b in zip(together, alone, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("window_s", [None, 1])
def test_finetuning_whisper_keeps_its_positional_table_frozen(window_s: int | None) -> None:
    """Whisper never trains its positional embedding (a fixed sinusoid table); fine-tuning must not either."""
    encoder = build_audio_encoder(
        AudioEncoderConfig(
            name="whisper", random=TINY_WHISPER, finetune=True, frozen_layers=[0], window_s=window_s
        )
    )
    assert not encoder.audiomodel.embed_positions.weight.requires_grad
    assert all(p.requires_grad for p in encoder.audiomodel.layers[1].parameters())
