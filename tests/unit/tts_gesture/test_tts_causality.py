"""Causality: after the length regulator, nothing at mel frame t (or motion frame k, or audio sample n)
changes when the frame features after it are perturbed; the centred public vocoder layout does look ahead."""

from __future__ import annotations

import torch
from tts_gesture.config import FastTalkerConfig
from tts_gesture.model import FastTalker, FrameFeatures, Generator
from tts_gesture.model.frame_rates import motion_owner

FRAMES, LAST_KEPT = 60, 33  # perturb mel frames 34.. of 60


def _features(config: FastTalkerConfig, generator: torch.Generator) -> FrameFeatures:
    def scalars() -> torch.Tensor:
        return torch.randn(1, FRAMES, generator=generator)

    return FrameFeatures(
        hidden=torch.randn(1, FRAMES, config.transformer.decoder_hidden, generator=generator),
        pitch=scalars(),
        energy=scalars(),
        log_duration=scalars(),
        progress=torch.rand(1, FRAMES, generator=generator),
        mel_mask=torch.zeros(1, FRAMES, dtype=torch.bool),
        mel_lens=torch.tensor([FRAMES]),
    )


def _perturbed(features: FrameFeatures, generator: torch.Generator) -> FrameFeatures:
    def later(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[:, LAST_KEPT + 1 :] += torch.randn(x[:, LAST_KEPT + 1 :].shape, generator=generator)
        return x

    return FrameFeatures(
        later(features.hidden),
        later(features.pitch),
        later(features.energy),
        later(features.log_duration),
        later(features.progress),
        features.mel_mask,
        features.mel_lens,
    )


def test_decoders_and_vocoder_ignore_later_frames(
    tiny_model: FastTalker, tiny_config: FastTalkerConfig
) -> None:
    tiny_model.eval()
    g = torch.Generator().manual_seed(0)
    features = _features(tiny_config, g)
    speakers = torch.tensor([0])
    seed = torch.randn(1, 4, tiny_model.gesture_decoder.layout.motion_dims, generator=g)
    with torch.no_grad():
        runs = [tiny_model.decode(f, speakers, seed=seed) for f in (features, _perturbed(features, g))]
        waves = [tiny_model.vocode(run.postnet_mel) for run in runs]
    a, b = runs
    kept = LAST_KEPT + 1
    for name in ("mel", "postnet_mel", "onset"):
        x, y = getattr(a, name), getattr(b, name)
        assert torch.allclose(x[:, :kept], y[:, :kept], atol=1e-5), name
        assert not torch.allclose(x[:, kept:], y[:, kept:], atol=1e-3), name  # the perturbation is felt
    # Motion frames whose interval ends before the first perturbed mel frame.
    first_touched = int(motion_owner(FRAMES, tiny_config.audio.frame_rate)[kept])
    for name in ("pose", "expression", "translation", "foot_contact"):
        x, y = getattr(a.gesture, name), getattr(b.gesture, name)
        assert torch.allclose(x[:, :first_touched], y[:, :first_touched], atol=1e-5), name
        assert not torch.allclose(x[:, first_touched:], y[:, first_touched:], atol=1e-3), name
    samples = kept * tiny_config.audio.hop_size
    assert torch.allclose(waves[0][:, :samples], waves[1][:, :samples], atol=1e-6)
    assert not torch.allclose(waves[0][:, samples:], waves[1][:, samples:], atol=1e-6)


def test_centred_vocoder_looks_ahead(tiny_config: FastTalkerConfig) -> None:
    """The same check fails for the public (centred) padding: the causal test above can fail."""
    torch.manual_seed(0)
    vocoder = Generator(tiny_config.audio.num_mels, tiny_config.vocoder.model_copy(update={"causal": False}))
    mel = torch.randn(1, tiny_config.audio.num_mels, FRAMES)
    later = mel.clone()
    later[..., LAST_KEPT + 1 :] += 1.0
    with torch.no_grad():
        x, y = vocoder(mel), vocoder(later)
    samples = (LAST_KEPT + 1) * tiny_config.audio.hop_size
    assert not torch.allclose(x[..., :samples], y[..., :samples], atol=1e-6)
