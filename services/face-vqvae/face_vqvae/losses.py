"""Training losses of both stages (upstream `loss_vqvae_prior.yaml` / `loss_vqvae_pred.yaml` weights).

Reconstruction terms are mean L1 in model space over the layout's expression and jaw channel groups.
FLAME-53: expression = the 50 coefficients, jaw = the 3 axis-angle values. ARKit-52: jaw = jawForward,
jawLeft, jawOpen, jawRight (they play the jaw pose's part), expression = the other 48 weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from face_vqvae.layouts import MotionLayout


def _split_l1(
    pred: torch.Tensor, ref: torch.Tensor, layout: MotionLayout
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 over expression channels, L1 over jaw channels) of [B, T, D] motions."""
    exp = list(layout.exp_channels)
    jaw = list(layout.jaw_channels)
    return F.l1_loss(pred[..., exp], ref[..., exp]), F.l1_loss(pred[..., jaw], ref[..., jaw])


@dataclass(frozen=True)
class MotionPriorLoss:
    """Stage 1: 1.5 VQ + 0.5 L1(exp) + 0.1 L1(jaw)."""

    layout: MotionLayout
    quant: float = 1.5
    recons_exp: float = 0.5
    recons_jaw: float = 0.1

    def __call__(self, motion_pred: torch.Tensor, motion_ref: torch.Tensor, vq_loss: torch.Tensor) -> dict:
        """motion_* [B, T, D], vq_loss scalar -> {'total', 'quant', 'recons_exp', 'recons_jaw'}."""
        exp, jaw = _split_l1(motion_pred, motion_ref, self.layout)
        total = self.quant * vq_loss + self.recons_exp * exp + self.recons_jaw * jaw
        return {"total": total, "quant": vq_loss, "recons_exp": exp, "recons_jaw": jaw}


@dataclass(frozen=True)
class FeaturePredictorLoss:
    """Stage 2: 1 L1(q(ẑ), q(z_gt)) + 0.15 L1(exp) + 0.1 L1(jaw), q = the frozen stage-1 quantizer."""

    layout: MotionLayout
    latent_manifold: float = 1.0
    recons_exp: float = 0.15
    recons_jaw: float = 0.1

    def __call__(
        self,
        quant_pred: torch.Tensor,
        quant_ref: torch.Tensor,
        motion_pred: torch.Tensor,
        motion_ref: torch.Tensor,
    ) -> dict:
        """quant_* [B, T, C] quantised latents, motion_* [B, T, D] -> {'total', 'latent_manifold', ...}."""
        latent = F.l1_loss(quant_pred, quant_ref)
        exp, jaw = _split_l1(motion_pred, motion_ref, self.layout)
        total = self.latent_manifold * latent + self.recons_exp * exp + self.recons_jaw * jaw
        return {"total": total, "latent_manifold": latent, "recons_exp": exp, "recons_jaw": jaw}
