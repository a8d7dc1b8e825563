"""Label-smoothed KL loss for the attention decoder (ESPnet `LabelSmoothingLoss`)."""

import torch


class LabelSmoothingLoss(torch.nn.Module):
    """KL(q ‖ p) with q = (1-ε) on the target and ε/(V-1) elsewhere, summed and divided by the batch size.

    Args:
        size: vocabulary size V.
        padding_idx: target id to ignore (ESPnet's ignore_id -1).
        smoothing: ε (0.1 in the recipe, `lsm_weight`).
        normalize_length: divide by the number of tokens instead of the batch size (recipe: False).
    """

    def __init__(self, size: int, padding_idx: int, smoothing: float, normalize_length: bool = False) -> None:
        super().__init__()
        self.size = size
        self.padding_idx = padding_idx
        self.confidence = 1.0 - smoothing
        self.smoothing = smoothing
        self.normalize_length = normalize_length

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """x [B, L, V] logits, target [B, L] ids (padding_idx ignored) → scalar loss."""
        batch = x.size(0)
        x = x.reshape(-1, self.size)
        target = target.reshape(-1)
        ignore = target == self.padding_idx
        true_dist = torch.full_like(x, self.smoothing / (self.size - 1))
        true_dist.scatter_(1, target.masked_fill(ignore, 0)[:, None], self.confidence)
        kl = torch.nn.functional.kl_div(torch.log_softmax(x, dim=1), true_dist, reduction="none")
        denom = int((~ignore).sum()) if self.normalize_length else batch
        return kl.masked_fill(ignore[:, None], 0.0).sum() / denom
