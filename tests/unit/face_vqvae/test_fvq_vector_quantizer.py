"""VectorQuantizer: upstream's strip layout, straight-through gradients, argmin vs temperature sampling."""

from __future__ import annotations

import pytest
import torch
from face_vqvae.model import VectorQuantizer


@pytest.mark.parametrize(
    ("latent", "e_dim", "frames"), [(32, 16, 7), (32, 16, 16), (256, 128, 75), (256, 128, 300)]
)
def test_flatten_is_upstream_reshape_and_round_trips(latent: int, e_dim: int, frames: int) -> None:
    quantizer = VectorQuantizer(16, e_dim)
    z = torch.randn(2, frames, latent)
    flat = quantizer.flatten(z)
    assert flat.shape == (2 * latent * frames // e_dim, e_dim)
    # Strip j of the channel-major tensor holds e_dim consecutive values of z[b].T.flatten().
    channel_major = z.permute(0, 2, 1).reshape(-1)
    assert torch.equal(flat[1], channel_major[e_dim : 2 * e_dim])
    assert torch.equal(quantizer.unflatten(flat, z.shape), z)


def test_strips_straddle_channels_when_frames_do_not_divide_code_width() -> None:
    quantizer = VectorQuantizer(16, 16)
    z = torch.zeros(1, 7, 32)
    z[0, :, 0] = 1.0  # only channel 0 is set: 7 values, then channel 1 starts inside the same strip
    assert quantizer.flatten(z)[0].tolist() == [1.0] * 7 + [0.0] * 9


def test_codes_round_trip_through_lookup() -> None:
    quantizer = VectorQuantizer(16, 16)
    z = torch.randn(3, 9, 32)
    quantized = quantizer(z)
    assert quantized.indices.shape == (3, 2 * 9)
    assert torch.allclose(quantizer.lookup(quantized.indices, z.shape), quantized.z_q, atol=1e-6)


def test_straight_through_gradient_and_loss() -> None:
    quantizer = VectorQuantizer(16, 16, beta=0.25)
    z = torch.randn(1, 5, 32, requires_grad=True)
    quantized = quantizer(z)
    quantized.z_q.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))
    flat_q = quantizer.embedding(quantized.indices.view(-1))
    expected = 1.25 * ((flat_q - quantizer.flatten(z)) ** 2).mean()
    assert torch.allclose(quantized.loss, expected)


def test_small_temperature_sampling_equals_argmin() -> None:
    torch.manual_seed(0)
    quantizer = VectorQuantizer(16, 16)
    quantizer.embedding.weight.data.normal_()
    z = torch.randn(2, 40, 32)
    argmin = quantizer(z).indices
    sampled = quantizer(z, temperature=1e-6, generator=torch.Generator().manual_seed(3)).indices
    assert torch.equal(sampled, argmin)


def test_temperature_sampling_is_seeded_and_varies() -> None:
    quantizer = VectorQuantizer(16, 16)
    quantizer.embedding.weight.data.normal_(std=0.1)
    z = torch.randn(1, 50, 32) * 0.1

    def draw(seed: int) -> torch.Tensor:
        return quantizer(z, temperature=0.2, generator=torch.Generator().manual_seed(seed)).indices

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))
