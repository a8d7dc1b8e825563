"""Conv2d front-end that subsamples time by 4 (two 3×3 stride-2 convs), ESPnet `Conv2dSubsampling`."""

import torch

from asr_sactc.model.rel_positional_encoding import RelPositionalEncoding


class Conv2dSubsampling(torch.nn.Module):
    """`conv` (Conv2d, ReLU, Conv2d, ReLU) then `out` (Linear, positional encoding).

    Args:
        idim: input feature size (80 log-Mel bins).
        odim: output size (model size and conv channels).
        pos_enc: positional encoding appended to `out` (it holds no parameters).
    """

    def __init__(self, idim: int, odim: int, pos_enc: RelPositionalEncoding) -> None:
        super().__init__()
        self.conv = torch.nn.Sequential(
            torch.nn.Conv2d(1, odim, 3, 2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(odim, odim, 3, 2),
            torch.nn.ReLU(),
        )
        self.out = torch.nn.Sequential(torch.nn.Linear(odim * (((idim - 1) // 2 - 1) // 2), odim), pos_enc)

    @staticmethod
    def output_length(lengths: torch.Tensor) -> torch.Tensor:
        """Frames after subsampling: ((L-1)//2 - 1)//2 (40 ms in → 4× the 8 ms hop = 32 ms out)."""
        return ((lengths - 1) // 2 - 1) // 2

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """x [B, T, idim], x_mask [B, 1, T] → ((x [B, T', odim], pos_emb [1, 2T'-1, odim]), mask [B, 1, T']).

        T' = ((T-1)//2 - 1)//2, and each utterance keeps output_length(its length) frames: the frames
        whose receptive field lies within it. ESPnet slices the mask instead, which gives a padded
        utterance up to two frames more, computed partly from padding; alone the two agree.
        """
        x = self.conv(x[:, None])
        batch, channels, frames, freq = x.shape
        x = self.out(x.transpose(1, 2).reshape(batch, frames, channels * freq))
        lengths = self.output_length(x_mask[:, 0, :].sum(dim=1))
        return x, (torch.arange(frames, device=x_mask.device)[None, :] < lengths[:, None])[:, None, :]
