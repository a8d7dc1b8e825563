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
        frames = self.x.size(0)
        k = candidates.numel()
        xs = self.x[:, candidates]  # [T, K]
        r = torch.full((frames, 2, k), NEG_INF, dtype=torch.float64)
        if prefix_len == 0:
            r[0, 0] = xs[0]
        r_sum = torch.logaddexp(r_prev[:, 0], r_prev[:, 1])
        log_phi = r_sum[:, None].repeat(1, k)
        if last is not None:
            # A repeated label needs a blank in between, so only blank-ending paths of h can continue.
            log_phi[:, candidates == last] = r_prev[:, 1:2]
        start = max(prefix_len, 1)
        log_psi = r[start - 1, 0].clone()
        for t in range(start, frames):
            r[t, 0] = torch.logaddexp(r[t - 1, 0], log_phi[t - 1]) + xs[t]
            r[t, 1] = torch.logaddexp(r[t - 1, 0], r[t - 1, 1]) + self.x[t, self.blank]
            log_psi = torch.logaddexp(log_psi, log_phi[t - 1] + xs[t])
        log_psi[candidates == self.eos] = r_sum[-1]
        log_psi[candidates == self.blank] = NEG_INF
        return log_psi, r.permute(2, 0, 1)
