"""Speaker-Aware CTC (Kang et al., ICASSP 2025): CTC with a speaker-boundary Bayes risk on token end times."""

import torch
import torch.nn.functional as F

from asr_sactc.ctc_lattice import (
    NEG_INF,
    alpha_recursion,
    extend_targets,
    flip_lattice,
    flip_states,
    log_skip_mask,
)

SPEAKER_ORDERS = ("code", "paper")


def speaker_log_risk(
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    max_frames: int,
    risk_factor: float,
    sc_id: int,
    order: str = "code",
) -> torch.Tensor:
    """Log speaker-aware weights log w_u(t) for every token and end frame.

    With k the 0-based index of the first `<sc>` and b = (k+1)/U, tokens before it get
    log σ(+λ(t/T - b)) under order="code" (the released code: speaker 1 pushed late) or
    log σ(-λ(t/T - b)) under order="paper" (Eq. 9: speaker 1 pushed early); tokens after it get the
    opposite sign, so a third speaker counts as "speaker 2". The first `<sc>`, utterances without
    `<sc>` and λ = 0 get weight 1.

    Args:
        targets: [B, U] label ids.
        input_lengths: [B] encoder frames T_b (t runs over 1..T_b and is divided by T_b).
        target_lengths: [B] labels U_b.
        max_frames: T, size of the time axis of the result.
        risk_factor: λ.
        sc_id: id of the speaker-change token.
        order: "code" or "paper".

    Returns:
        [B, U, T] float64.
    """
    if order not in SPEAKER_ORDERS:
        raise ValueError(f"order must be one of {SPEAKER_ORDERS}, got {order!r}")
    batch, max_u = targets.shape
    device = targets.device
    risk = torch.zeros(batch, max_u, max_frames, dtype=torch.float64, device=device)
    if risk_factor == 0.0:
        return risk
    u_idx = torch.arange(max_u, device=device)
    is_sc = (targets == sc_id) & (u_idx[None, :] < target_lengths[:, None])
    has_sc = is_sc.any(dim=1)
    first_sc = torch.where(has_sc, is_sc.int().argmax(dim=1), -1)
    boundary = (first_sc + 1).double() / target_lengths.clamp(min=1).double()
    t_norm = (
        torch.arange(1, max_frames + 1, device=device).double()[None, :] / input_lengths[:, None].double()
    )
    sign = 1.0 if order == "code" else -1.0
    before = F.logsigmoid(sign * risk_factor * (t_norm - boundary[:, None]))  # [B, T]
    after = F.logsigmoid(-sign * risk_factor * (t_norm - boundary[:, None]))
    is_before = (u_idx[None, :] < first_sc[:, None])[:, :, None]
    is_after = ((u_idx[None, :] > first_sc[:, None]) & has_sc[:, None])[:, :, None]
    risk = torch.where(is_before, before[:, None, :], risk)
    return torch.where(is_after, after[:, None, :], risk)


class _SpeakerAwareCTCFunction(torch.autograd.Function):
    """Per-utterance SACTC loss with an analytic reverse pass (two batched lattice sweeps each way)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        log_probs: torch.Tensor,
        targets: torch.Tensor,
        input_lengths: torch.Tensor,
        target_lengths: torch.Tensor,
        log_risk: torch.Tensor,
        blank: int,
    ) -> torch.Tensor:
        batch, t_max, _ = log_probs.shape
        max_u = targets.size(1)
        s_max = 2 * max_u + 1
        device = log_probs.device
        state_lengths = 2 * target_lengths + 1
        ext = extend_targets(targets, target_lengths, blank)
        emit = log_probs.gather(2, ext[:, None, :].expand(batch, t_max, s_max)).transpose(0, 1).double()
        frame_ok = torch.arange(t_max, device=device)[:, None] < input_lengths[None, :]
        state_ok = torch.arange(s_max, device=device)[None, :] < state_lengths[:, None]
        lattice_ok = frame_ok[:, :, None] & state_ok[None, :, :]
        emit = emit.masked_fill_(~lattice_ok, NEG_INF)
        emit_f = flip_lattice(emit, input_lengths, state_lengths)
        skip = log_skip_mask(ext, state_lengths)
        skip_f = log_skip_mask(flip_states(ext, state_lengths, blank), state_lengths)

        # α on the lattice and β as α of the flipped lattice, in one sweep over 2B rows.
        initial = emit.new_full((2 * batch, s_max), NEG_INF)
        initial[:, 0] = 0.0
        both = alpha_recursion(torch.cat([emit, emit_f], 1), torch.cat([skip, skip_f]), initial)
        alpha = both[:, :batch]
        beta = flip_lattice(both[:, batch:], input_lengths, state_lengths)

        # β(t+1, ·) with a virtual end state S_b that the last token may leave into after frame T_b.
        beta_next = emit.new_full((t_max, batch, s_max + 2), NEG_INF)
        beta_next[:-1, :, :s_max] = beta[1:]
        beta_next[input_lengths - 1, torch.arange(batch, device=device), state_lengths] = 0.0
        u_idx = torch.arange(max_u, device=device)[None, :]
        next_differs = torch.ones_like(targets, dtype=torch.bool)
        next_differs[:, :-1] = targets[:, 1:] != targets[:, :-1]
        skip_next = torch.where(
            (u_idx < target_lengths[:, None] - 1) & next_differs | (u_idx == target_lengths[:, None] - 1),
            0.0,
            NEG_INF,
        ).to(emit)
        # E(u, t) = α(t, 2u+1) · [β(t+1, 2u+2) + skip · β(t+1, 2u+3)]: paths whose last frame on token u is t.
        alpha_label = alpha[:, :, 1::2]
        log_leave = torch.logaddexp(
            beta_next[:, :, 2 : 2 * max_u + 1 : 2], beta_next[:, :, 3 : 2 * max_u + 2 : 2] + skip_next
        )
        risk = log_risk.permute(2, 0, 1)
        score = alpha_label + log_leave + risk
        score = torch.where(torch.isnan(score), NEG_INF, score)
        log_j = torch.logsumexp(score, dim=0)  # [B, U]

        # The released code averages log J'(u) over its finite terms and zeroes utterances with T < U.
        token_ok = torch.isfinite(log_j) & (u_idx < target_lengths[:, None])
        count = token_ok.sum(dim=1)
        utt_ok = (count > 0) & (input_lengths >= target_lengths)
        token_ok &= utt_ok[:, None]
        loss = -torch.where(token_ok, log_j, 0.0).sum(dim=1) / count.clamp(min=1)
        loss = torch.where(utt_ok, loss, 0.0)

        ctx.save_for_backward(
            emit,
            emit_f,
            skip,
            skip_f,
            alpha,
            beta,
            alpha_label,
            log_leave,
            risk,
            log_j,
            token_ok,
            count,
            ext,
            input_lengths,
            state_lengths,
            lattice_ok,
            skip_next,
        )
        ctx.vocab = log_probs.size(2)
        ctx.dtype = log_probs.dtype
        return loss.to(log_probs.dtype)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_loss: torch.Tensor) -> tuple:
        (
            emit,
            emit_f,
            skip,
            skip_f,
            alpha,
            beta,
            alpha_label,
            log_leave,
            risk,
            log_j,
            token_ok,
            count,
            ext,
            input_lengths,
            state_lengths,
            lattice_ok,
            skip_next,
        ) = ctx.saved_tensors
        t_max, batch, s_max = emit.shape
        max_u = alpha_label.size(2)
        # log P(u, t) - log n with P the risk-weighted end-time posterior; the α and β adjoints are sourced
        # by ∂L/∂exp(α) and ∂L/∂exp(β), which reduce to these sums without dividing by α or β.
        base = risk - log_j[None] - count.clamp(min=1).double().log()[None, :, None]
        base = base.masked_fill(~token_ok[None], NEG_INF)
        src_alpha = torch.full_like(emit, NEG_INF)
        src_alpha[:, :, 1::2] = log_leave + base
        to_beta = alpha_label + base
        src_beta = emit.new_full((t_max, batch, s_max + 2), NEG_INF)
        src_beta[1:, :, 2 : 2 * max_u + 1 : 2] = to_beta[:-1]
        src_beta[1:, :, 3 : 2 * max_u + 2 : 2] = (to_beta + skip_next)[:-1]
        src_beta = src_beta[:, :, :s_max].masked_fill(~lattice_ok, NEG_INF)

        # The α adjoint runs backwards in time, i.e. forwards on the flipped lattice; β's the other way.
        initial = emit.new_full((2 * batch, s_max), NEG_INF)
        adj = alpha_recursion(
            torch.cat([emit_f, emit], 1),
            torch.cat([skip_f, skip]),
            initial,
            torch.cat([flip_lattice(src_alpha, input_lengths, state_lengths), src_beta], 1),
        )
        adj_alpha = flip_lattice(adj[:, :batch], input_lengths, state_lengths)
        adj_beta = adj[:, batch:]
        occupancy = torch.exp(alpha + adj_alpha - emit) + torch.exp(beta + adj_beta - emit)
        # States with log-probability -inf (padding, or a label the model rules out) get no gradient.
        grad_emit = -torch.where(emit > NEG_INF, occupancy, 0.0) * grad_loss.double()[None, :, None]
        grad = torch.zeros(batch, t_max, ctx.vocab, dtype=ctx.dtype, device=emit.device)
        grad.scatter_add_(
            2, ext[:, None, :].expand(batch, t_max, s_max), grad_emit.transpose(0, 1).to(ctx.dtype)
        )
        return grad, None, None, None, None, None


class SpeakerAwareCTCLoss(torch.nn.Module):
    """SACTC objective L = -(1/U) Σ_u log Σ_t w_u(t) E(u, t), averaged over the batch.

    E(u, t) is the end-grouped (Bayes-risk CTC "end") token posterior and w_u(t) the speaker-aware
    weight (see `speaker_log_risk`). With risk_factor 0 or labels without `<sc>` this equals CTC.

    Args:
        risk_factor: λ, sharpness of the speaker boundary weighting (paper default 15).
        sc_id: id of the speaker-change token `<sc>` (`$`, id 2 in the recipe).
        blank: blank id.
        order: "code" (released implementation, speaker 1 pushed late) or "paper" (Eq. 9).
        reduction: "mean", "sum" or "none" over the batch.
    """

    def __init__(
        self,
        risk_factor: float = 15.0,
        sc_id: int = 2,
        blank: int = 0,
        order: str = "code",
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if risk_factor < 0:
            raise ValueError("risk_factor must be >= 0")
        if order not in SPEAKER_ORDERS:
            raise ValueError(f"order must be one of {SPEAKER_ORDERS}, got {order!r}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"unknown reduction {reduction!r}")
        self.risk_factor = risk_factor
        self.sc_id = sc_id
        self.blank = blank
        self.order = order
        self.reduction = reduction

    def forward(
        self,
        log_probs: torch.Tensor,
        targets: torch.Tensor,
        input_lengths: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            log_probs: [B, T, V] log-softmax outputs at the encoder frame rate.
            targets: [B, U] label ids (blank-free, `<sc>` included), padding is ignored.
            input_lengths: [B] valid frames.
            target_lengths: [B] valid labels (>= 1).

        Returns:
            Scalar, or [B] per-utterance losses with reduction "none".
        """
        input_lengths = input_lengths.to(log_probs.device, torch.long)
        target_lengths = target_lengths.to(log_probs.device, torch.long)
        t_max = int(input_lengths.max())
        u_max = max(int(target_lengths.max()), 1)
        log_probs = log_probs[:, :t_max]
        targets = targets[:, :u_max].to(log_probs.device, torch.long).clamp(min=0)
        log_risk = speaker_log_risk(
            targets, input_lengths, target_lengths, t_max, self.risk_factor, self.sc_id, self.order
        )
        loss = _SpeakerAwareCTCFunction.apply(
            log_probs, targets, input_lengths, target_lengths, log_risk, self.blank
        )
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
