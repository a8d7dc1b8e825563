"""Orate's FGD motion autoencoder for the open-rig layout (624-d rot6d at 30 fps). NOT EMAGE's.

EMAGE scores FGD with its own pretrained SMPL-X autoencoder (`VAESKConv`, `AESKConv_240_100.bin`); no
open-rig counterpart exists, so this one is trained here (`scripts/train_motion_ae.py`) on the data
studio's gesture triples and shipped in `checkpoints/motion-ae/`. Its shape follows EMAGE's eval
autoencoder: an encoder of 4 stride-2 convolutions (kernel 4) each followed by LeakyReLU(0.2) and a residual
block (EMAGE `VQEncoderV3`), so one latent per 16 frames; a decoder of 2 residual blocks and 4 nearest
x2 upsamplings with kernel-3 convolutions (EMAGE `VQDecoderV3`, without its last 624 -> 624 convolution,
which alone would be 1.2 M parameters). Sequences are scored in whole 32-frame windows, as EMAGE's `FGD`
truncates them. FGD values from this model are not comparable with EMAGE's published ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from tts_gesture.config import SERVICE_DIR

DEFAULT_DIR = SERVICE_DIR / "checkpoints" / "motion-ae"
WINDOW = 32  # frames: EMAGE's FGD drops the remainder of a sequence modulo 32


@dataclass(frozen=True)
class MotionAEConfig:
    pose_dims: int = 624  # open rig: 104 bones x rot6d
    latent: int = 96  # channels of the encoder and of each latent vector
    layers: int = 4  # stride-2 stages: one latent per 2**layers frames

    @property
    def stride(self) -> int:
        return 2**self.layers


class ResBlock(nn.Module):
    """EMAGE's `ResBlock`: x + conv3(LeakyReLU(conv3(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv1d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


class MotionAutoencoder(nn.Module):
    def __init__(self, config: MotionAEConfig = MotionAEConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.latent
        down: list[nn.Module] = []
        for i in range(config.layers):
            down += [nn.Conv1d(config.pose_dims if i == 0 else c, c, 4, 2, 1), nn.LeakyReLU(0.2), ResBlock(c)]
        self.encoder = nn.Sequential(*down)
        up: list[nn.Module] = [ResBlock(c), ResBlock(c)]
        for i in range(config.layers):
            last = i == config.layers - 1
            up += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(c, config.pose_dims if last else c, 3, padding=1),
            ]
            if not last:
                up.append(nn.LeakyReLU(0.2))
        self.decoder = nn.Sequential(*up)

    def map2latent(self, poses: torch.Tensor) -> torch.Tensor:
        """poses [B, T, pose_dims] rot6d, T a multiple of 2**layers -> latents [B, T / 2**layers, latent]."""
        if poses.shape[1] % self.config.stride:
            raise ValueError(f"{poses.shape[1]} frames is not a multiple of {self.config.stride}")
        return self.encoder(poses.transpose(1, 2)).transpose(1, 2)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, N, latent] -> poses [B, N * 2**layers, pose_dims]."""
        return self.decoder(latents.transpose(1, 2)).transpose(1, 2)

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        return self.decode(self.map2latent(poses))

    def save(self, folder: Path, **card: object) -> None:
        """weights.pt (float32 state dict) and config.json: the config plus `card` (data, command, scores)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), folder / "weights.pt")
        (folder / "config.json").write_text(
            json.dumps({"config": asdict(self.config), **card}, indent=1) + "\n"
        )


def load_motion_ae(folder: Path = DEFAULT_DIR) -> MotionAutoencoder:
    """The shipped (or a given) motion autoencoder, in eval mode."""
    folder = Path(folder)
    if not (folder / "weights.pt").is_file():
        raise FileNotFoundError(
            f"no motion autoencoder in {folder}; train one with scripts/train_motion_ae.py"
        )
    config = MotionAEConfig(**json.loads((folder / "config.json").read_text())["config"])
    model = MotionAutoencoder(config)
    model.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu", weights_only=True))
    return model.eval()
