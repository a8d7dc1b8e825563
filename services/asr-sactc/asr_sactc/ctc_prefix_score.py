"""CTC prefix probabilities for attention beam search (Watanabe et al. 2017; ESPnet `CTCPrefixScore`)."""

import torch

NEG_INF = float("-inf")


class CTCPrefixScorer:
    """Log prefix probability ψ(h) = log Σ_{sequences starting with h} P(seq | x) for growing hypotheses.

    State per hypothesis: r [T, 2] = log (r^n_t(h), r^b_t(h)), the probability of h over frames 1..t
    ending in a non-blank or a blank, plus ψ(h).

    Args:
        log_probs: [T, V] CTC frame log-posteriors of one utterance.
        blank: blank id.
        eos: end-of-sentence id; ψ(h + eos) = log P(h | x).
    """

    def __init__(self, log_probs: torch.Tensor, blank: int, eos: int) -> None:
        self.x = log_probs.double()
        self.blank = blank
        self.eos = eos

    def initial_state(self) -> tuple[torch.Tensor, float]:
        """State of the empty prefix (`<sos>` only): all-blank paths, ψ = 0."""
        r = torch.full((self.x.size(0), 2), NEG_INF, dtype=torch.float64)
        r[:, 1] = torch.cumsum(self.x[:, self.blank], dim=0)
        return r, 0.0

    def score(
        self, prefix_len: int, last: int | None, r_prev: torch.Tensor, candidates: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Extend a hypothesis with each candidate token.

        Args:
            prefix_len: tokens in h (without `<sos>`).
            last: last token of h, or None for the empty prefix.
            r_prev: [T, 2] state of h.
            candidates: [K] token ids.

        Returns:
            ψ(h + c) [K] (eos → log P(h|x), blank → -inf) and the new states [K, T, 2].
        """
        psi, states = self.score_batch(prefix_len, [last], r_prev[None], candidates[None])
        return psi[0], states[0]

    def score_batch(
        self, prefix_len: int, lasts: list[int | None], r_prev: torch.Tensor, candidates: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`score` for N hypotheses of the same length at once: one pass over the frames for all of them
        (the beam search extends every running hypothesis by one token per step, so lengths agree).

        Args:
            prefix_len: tokens in each h (without `<sos>`).
            lasts: [N] last token of each h, or None for the empty prefix.
            r_prev: [N, T, 2] states.
            candidates: [N, K] token ids per hypothesis.

        Returns:
            ψ [N, K] and the new states [N, K, T, 2].
        """
        frames = self.x.size(0)
        hyps, k = candidates.shape
        flat = candidates.reshape(-1)  # column m = hypothesis m // K, candidate m % K
        xs = self.x[:, flat]  # [T, N·K]
        r = torch.full((frames, 2, hyps * k), NEG_INF, dtype=torch.float64)
        if prefix_len == 0:
            r[0, 0] = xs[0]
        r_sum = torch.logaddexp(r_prev[:, :, 0], r_prev[:, :, 1])  # [N, T]
        log_phi = r_sum.repeat_interleave(k, dim=0).T.clone()  # [T, N·K]
        # A repeated label needs a blank in between, so only blank-ending paths of h can continue.
        last = torch.tensor([-1 if t is None else t for t in lasts]).repeat_interleave(k)
        repeated = flat == last
        log_phi[:, repeated] = r_prev[:, :, 1].repeat_interleave(k, dim=0)[repeated].T
        start = max(prefix_len, 1)
        log_psi = r[start - 1, 0].clone()
        blank = self.x[:, self.blank]
        for t in range(start, frames):
            r[t, 0] = torch.logaddexp(r[t - 1, 0], log_phi[t - 1]) + xs[t]
            r[t, 1] = torch.logaddexp(r[t - 1, 0], r[t - 1, 1]) + blank[t]
            log_psi = torch.logaddexp(log_psi, log_phi[t - 1] + xs[t])
        log_psi = torch.where(flat == self.eos, r_sum[:, -1].repeat_interleave(k), log_psi)
        log_psi[flat == self.blank] = NEG_INF
        return log_psi.reshape(hyps, k), r.permute(2, 0, 1).reshape(hyps, k, frames, 2)
