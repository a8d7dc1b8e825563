"""A public HiFi-GAN generator checkpoint loads strictly, and centred padding reproduces its forward pass.

The expected keys and shapes are written out here from jik876/hifi-gan's `models.py` (Generator,
ResBlock1/2: weight_norm(Conv1d / ConvTranspose1d), padding get_padding(k, d) = (k*d - d)/2, upsampling
padding (k - u)/2) and its config_v1/v2/v3.json, never read from the project's model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tts_gesture.checkpoints import load_hifigan_generator
from tts_gesture.config import VocoderConfig
from tts_gesture.model import Generator

V1 = dict(
    resblock="1",
    upsample_rates=[8, 8, 2, 2],
    upsample_kernel_sizes=[16, 16, 4, 4],
    upsample_initial_channel=512,
    resblock_kernel_sizes=[3, 7, 11],
    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
)
V2 = {**V1, "upsample_initial_channel": 128}
V3 = dict(
    resblock="2",
    upsample_rates=[8, 8, 4],
    upsample_kernel_sizes=[16, 16, 8],
    upsample_initial_channel=256,
    resblock_kernel_sizes=[3, 5, 7],
    resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]],
)
MELS = 80


def _weight_normed(prefix: str, weight_shape: tuple[int, ...], g: torch.Generator) -> dict[str, torch.Tensor]:
    """weight_norm(dim=0) keys of one conv: weight_g [out-dim-0, 1, 1], weight_v = the weight, bias."""
    bias_size = weight_shape[1] if ".ups." in f".{prefix}" else weight_shape[0]  # ConvTranspose: [in, out, k]
    return {
        f"{prefix}.weight_g": torch.rand(weight_shape[0], 1, 1, generator=g) + 0.5,
        f"{prefix}.weight_v": torch.randn(*weight_shape, generator=g) * 0.1,
        f"{prefix}.bias": torch.randn(bias_size, generator=g) * 0.01,
    }


def public_state_dict(h: dict, g: torch.Generator) -> dict[str, torch.Tensor]:
    ch = h["upsample_initial_channel"]
    state = _weight_normed("conv_pre", (ch, MELS, 7), g)
    for i, k in enumerate(h["upsample_kernel_sizes"]):
        state |= _weight_normed(f"ups.{i}", (ch // 2**i, ch // 2 ** (i + 1), k), g)
    n = 0
    for i in range(len(h["upsample_rates"])):
        c = ch // 2 ** (i + 1)
        for k, dilations in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"], strict=True):
            lists = ("convs1", "convs2") if h["resblock"] == "1" else ("convs",)
            for name in lists:
                for m in range(len(dilations)):
                    state |= _weight_normed(f"resblocks.{n}.{name}.{m}", (c, c, k), g)
            n += 1
    return state | _weight_normed("conv_post", (1, ch // 2 ** len(h["upsample_rates"]), 7), g)


def _weight(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    v = state[f"{prefix}.weight_v"]
    return state[f"{prefix}.weight_g"] * v / v.flatten(1).norm(dim=1).view(-1, 1, 1)


def reference_forward(state: dict[str, torch.Tensor], h: dict, mel: torch.Tensor) -> torch.Tensor:
    """The public Generator.forward, functionally, with its own padding arguments."""

    def conv(prefix: str, x: torch.Tensor, dilation: int = 1) -> torch.Tensor:
        k = state[f"{prefix}.weight_v"].shape[-1]
        return F.conv1d(
            x,
            _weight(state, prefix),
            state[f"{prefix}.bias"],
            padding=(k * dilation - dilation) // 2,
            dilation=dilation,
        )

    x = conv("conv_pre", mel)
    kernels = len(h["resblock_kernel_sizes"])
    for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"], strict=True)):
        x = F.leaky_relu(x, 0.1)
        x = F.conv_transpose1d(
            x, _weight(state, f"ups.{i}"), state[f"ups.{i}.bias"], stride=u, padding=(k - u) // 2
        )
        total = 0
        for j, dilations in enumerate(h["resblock_dilation_sizes"]):
            prefix, y = f"resblocks.{i * kernels + j}", x
            for m, d in enumerate(dilations):
                if h["resblock"] == "1":
                    t = conv(f"{prefix}.convs1.{m}", F.leaky_relu(y, 0.1), d)
                    y = conv(f"{prefix}.convs2.{m}", F.leaky_relu(t, 0.1)) + y
                else:
                    y = conv(f"{prefix}.convs.{m}", F.leaky_relu(y, 0.1), d) + y
            total = total + y
        x = total / kernels
    return torch.tanh(conv("conv_post", F.leaky_relu(x)))


@pytest.mark.parametrize("h", [V1, V2, V3], ids=["v1", "v2", "v3"])
def test_public_generator_file_loads_strictly(h: dict, tmp_path: Path) -> None:
    state = public_state_dict(h, torch.Generator().manual_seed(0))
    path = tmp_path / "generator_v.pth.tar"
    torch.save({"generator": state}, path)  # the layout jik876/hifi-gan's train.py saves
    generator = Generator(MELS, VocoderConfig(**h, causal=False))
    load_hifigan_generator(generator, path)
    loaded = generator.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


@pytest.mark.parametrize("h", [V2, V3], ids=["v2", "v3"])
def test_centred_generator_reproduces_the_public_forward(h: dict) -> None:
    state = public_state_dict(h, torch.Generator().manual_seed(1))
    generator = Generator(MELS, VocoderConfig(**h, causal=False))
    load_hifigan_generator(generator, state)
    mel = torch.randn(1, MELS, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours, reference = generator(mel), reference_forward(state, h, mel)
    assert ours.shape == (1, 1, 12 * 256)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_missing_or_misshapen_keys_are_refused() -> None:
    state = public_state_dict(V2, torch.Generator().manual_seed(0))
    generator = Generator(MELS, VocoderConfig(**V2, causal=False))
    with pytest.raises(RuntimeError, match="Missing key"):
        load_hifigan_generator(generator, {k: v for k, v in state.items() if k != "conv_post.bias"})
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_hifigan_generator(Generator(MELS, VocoderConfig(**V1, causal=False)), state)
