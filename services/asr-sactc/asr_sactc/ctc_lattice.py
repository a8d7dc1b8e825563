"""Batched log-space CTC lattice recursions (the forward pass, reused for β and for the adjoints)."""

import torch

NEG_INF = float("-inf")


def extend_targets(targets: torch.Tensor, target_lengths: torch.Tensor, blank: int) -> torch.Tensor:
    """Interleave blanks with the labels: l' = [∅, l_1, ∅, …, l_U, ∅].

    Args:
        targets: [B, U] label ids; entries at u >= target_lengths[b] are ignored.
        target_lengths: [B] number of labels per utterance.
        blank: blank id.

    Returns:
        [B, 2U+1] extended label ids; padding states hold the blank id.
    """
    batch, max_u = targets.shape
    valid = torch.arange(max_u, device=targets.device)[None, :] < target_lengths[:, None]
    ext = targets.new_full((batch, 2 * max_u + 1), blank)
    ext[:, 1::2] = torch.where(valid, targets, blank)
    return ext


def log_skip_mask(ext: torch.Tensor, state_lengths: torch.Tensor) -> torch.Tensor:
    """Log-weights of the s-2 → s transition (allowed into a label that differs from the previous label).

    Args:
        ext: [N, S] extended label ids.
        state_lengths: [N] number of valid states (2U+1).

    Returns:
        [N, S] float64, 0 where the skip is allowed and -inf elsewhere.
    """
    n, s = ext.shape
    idx = torch.arange(s, device=ext.device)
    allowed = torch.zeros(n, s, dtype=torch.bool, device=ext.device)
    allowed[:, 2:] = ext[:, 2:] != ext[:, :-2]
    allowed &= (idx % 2 == 1)[None, :] & (idx[None, :] < state_lengths[:, None])
    mask = torch.full((n, s), NEG_INF, dtype=torch.float64, device=ext.device)
    return mask.masked_fill_(allowed, 0.0)


def flip_lattice(
    x: torch.Tensor, time_lengths: torch.Tensor, state_lengths: torch.Tensor, fill: float = NEG_INF
) -> torch.Tensor:
    """Reverse every utterance in time and in states within its own lengths (an involution).

    Running the forward recursion on a flipped lattice gives the backward variables β, and running it
    with sources on the opposite layout gives the adjoints, so one kernel serves all four passes.

    Args:
        x: [T, N, S] lattice values.
        time_lengths: [N] valid frames per utterance.
        state_lengths: [N] valid states per utterance.
        fill: value written outside the valid region.

    Returns:
        [T, N, S] with y(t, n, s) = x(T_n-1-t, n, S_n-1-s) inside the valid region.
    """
    t_max, n, s_max = x.shape
    device = x.device
    t_idx = time_lengths[None, :] - 1 - torch.arange(t_max, device=device)[:, None]
    s_idx = state_lengths[:, None] - 1 - torch.arange(s_max, device=device)[None, :]
    valid = (t_idx >= 0)[:, :, None] & (s_idx >= 0)[None, :, :]
    out = x[
        t_idx.clamp(min=0)[:, :, None],
        torch.arange(n, device=device)[None, :, None],
        s_idx.clamp(min=0)[None],
    ]
    return out.masked_fill_(~valid, fill)


def flip_states(ext: torch.Tensor, state_lengths: torch.Tensor, fill: int) -> torch.Tensor:
    """Reverse each row of extended labels within its length: [N, S] → [N, S]."""
    s_max = ext.size(1)
    s_idx = state_lengths[:, None] - 1 - torch.arange(s_max, device=ext.device)[None, :]
    out = ext.gather(1, s_idx.clamp(min=0))
    return out.masked_fill_(s_idx < 0, fill)


@torch.no_grad()
def alpha_recursion(
    log_emit: torch.Tensor,
    log_skip: torch.Tensor,
    initial: torch.Tensor,
    source: torch.Tensor | None = None,
) -> torch.Tensor:
    """CTC forward recursion in the log semiring, vectorised over utterances and states.

    x(t, s) = log_emit(t, s) + LSE(x(t-1, s), x(t-1, s-1), x(t-1, s-2) + log_skip(s), source(t, s)),
    with x(-1, ·) = initial. With initial = [0, -inf, …] and no source this is α; on a flipped lattice
    it is β; with initial = -inf and a source it is the reverse-mode adjoint of the other direction.

    Args:
        log_emit: [T, N, S] float64 log-probability of each state's label at each frame.
        log_skip: [N, S] float64 transition weights for s-2 → s (0 or -inf).
        initial: [N, S] float64 log-weights of the virtual frame before frame 0.
        source: optional [T, N, S] float64 log-weights injected before the emission at each frame.

    Returns:
        [T, N, S] float64 (a strided view).
    """
    t_max, n, s = log_emit.shape
    # Two leading -inf columns turn the s-1 and s-2 predecessors into views without copies.
    out = log_emit.new_full((t_max + 1, n, s + 2), NEG_INF)
    out[0, :, 2:] = initial
    skip_term = log_emit.new_empty(n, s)
    for t in range(t_max):
        prev, cur = out[t], out[t + 1, :, 2:]
        torch.logaddexp(prev[:, 2:], prev[:, 1:-1], out=cur)
        torch.add(prev[:, :-2], log_skip, out=skip_term)
        torch.logaddexp(cur, skip_term, out=cur)
        if source is not None:
            torch.logaddexp(cur, source[t], out=cur)
        cur.add_(log_emit[t])
    return out[1:, :, 2:]
