"""SpecAugment as in ESPnet `SpecAug`: bicubic time warp, frequency masks and time masks."""

import torch
import torch.nn.functional as F


def _mask_along_axis(
    spec: torch.Tensor, width_range: tuple[int, int], num_mask: int, dim: int
) -> torch.Tensor:
    """Zero `num_mask` random bands of width in [low, high) along `dim` (1 = time, 2 = freq) of [B, T, F]."""
    batch, size = spec.size(0), spec.size(dim)
    gen_device = spec.device
    width = torch.randint(width_range[0], width_range[1], (batch, num_mask, 1), device=gen_device)
    start = torch.randint(0, max(1, size - int(width.max())), (batch, num_mask, 1), device=gen_device)
    pos = torch.arange(size, device=gen_device)[None, None, :]
    mask = ((start <= pos) & (pos < start + width)).any(dim=1)  # [B, size]
    return spec.masked_fill(mask[:, :, None] if dim == 1 else mask[:, None, :], 0.0)


def _time_warp(x: torch.Tensor, window: int, mode: str) -> torch.Tensor:
    """Warp one utterance [1, T, F]: stretch [0, c) to [0, w) and squeeze [c, T) to [w, T)."""
    frames = x.size(1)
    if frames - window <= window:
        return x
    centre = int(torch.randint(window, frames - window, (1,)))
    warped = int(torch.randint(centre - window, centre + window, (1,))) + 1
    x4 = x[:, None]
    left = F.interpolate(x4[:, :, :centre], (warped, x.size(2)), mode=mode, align_corners=False)
    right = F.interpolate(x4[:, :, centre:], (frames - warped, x.size(2)), mode=mode, align_corners=False)
    return torch.cat([left, right], dim=2)[:, 0]


class SpecAug(torch.nn.Module):
    """Training-time augmentation of [B, T, F] features; the recipe uses warp 5, 2×F(0-30), 2×T(0-40).

    Args:
        apply_time_warp: warp the time axis around a random centre.
        time_warp_window: maximum warp in frames.
        time_warp_mode: interpolation mode ("bicubic").
        apply_freq_mask: apply frequency masks.
        freq_mask_width_range: [low, high) mask width in bins.
        num_freq_mask: number of frequency masks.
        apply_time_mask: apply time masks.
        time_mask_width_range: [low, high) mask width in frames.
        num_time_mask: number of time masks.
    """

    def __init__(
        self,
        apply_time_warp: bool = True,
        time_warp_window: int = 5,
        time_warp_mode: str = "bicubic",
        apply_freq_mask: bool = True,
        freq_mask_width_range: tuple[int, int] = (0, 20),
        num_freq_mask: int = 2,
        apply_time_mask: bool = True,
        time_mask_width_range: tuple[int, int] = (0, 100),
        num_time_mask: int = 2,
    ) -> None:
        super().__init__()
        self.apply_time_warp = apply_time_warp
        self.time_warp_window = time_warp_window
        self.time_warp_mode = time_warp_mode
        self.apply_freq_mask = apply_freq_mask
        self.freq_mask_width_range = tuple(freq_mask_width_range)
        self.num_freq_mask = num_freq_mask
        self.apply_time_mask = apply_time_mask
        self.time_mask_width_range = tuple(time_mask_width_range)
        self.num_time_mask = num_time_mask

    def forward(self, x: torch.Tensor, x_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, F], [B] → augmented [B, T, F], [B] (lengths unchanged)."""
        if self.apply_time_warp:
            # Warp each utterance within its own length so padding never leaks into speech frames.
            x = torch.stack(
                [
                    F.pad(
                        _time_warp(x[i : i + 1, : int(n)], self.time_warp_window, self.time_warp_mode)[0],
                        (0, 0, 0, x.size(1) - int(n)),
                    )
                    for i, n in enumerate(x_lengths)
                ]
            )
        if self.apply_freq_mask:
            x = _mask_along_axis(x, self.freq_mask_width_range, self.num_freq_mask, dim=2)
        if self.apply_time_mask:
            x = _mask_along_axis(x, self.time_mask_width_range, self.num_time_mask, dim=1)
        return x, x_lengths
