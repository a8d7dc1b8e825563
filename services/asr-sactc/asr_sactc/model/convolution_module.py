"""Conformer convolution module: pointwise conv + GLU, depthwise conv, BatchNorm, Swish, pointwise conv."""

import torch


class ConvolutionModule(torch.nn.Module):
    """ESPnet `ConvolutionModule` (`pointwise_conv1`, `depthwise_conv`, `norm`, `pointwise_conv2`).

    Args:
        channels: model size.
        kernel_size: depthwise kernel (odd; 15 in the SACTC recipe).
        activation: activation after the BatchNorm (Swish).
    """

    def __init__(self, channels: int, kernel_size: int, activation: torch.nn.Module | None = None) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"cnn_module_kernel must be odd, got {kernel_size}")
        self.pointwise_conv1 = torch.nn.Conv1d(channels, 2 * channels, kernel_size=1)
        self.depthwise_conv = torch.nn.Conv1d(
            channels, channels, kernel_size, padding=(kernel_size - 1) // 2, groups=channels
        )
        self.norm = torch.nn.BatchNorm1d(channels)
        self.pointwise_conv2 = torch.nn.Conv1d(channels, channels, kernel_size=1)
        self.activation = torch.nn.SiLU() if activation is None else activation

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, C] (pad_mask [B, T], True = padding) → [B, T, C]."""
        x = torch.nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)
        if pad_mask is not None:
            # Zero padded frames so that the depthwise kernel does not smear them into valid frames.
            x = x.masked_fill(pad_mask[:, None, :], 0.0)
        x = self.activation(self.norm(self.depthwise_conv(x)))
        return self.pointwise_conv2(x).transpose(1, 2)
