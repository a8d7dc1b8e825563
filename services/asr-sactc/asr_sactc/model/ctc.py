"""CTC head (`ctc.ctc_lo`) with a selectable objective: builtin CTC or Speaker-Aware CTC."""

from collections.abc import Callable

import torch
import torch.nn.functional as F

from asr_sactc.sactc import SpeakerAwareCTCLoss

CTCObjective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _builtin_ctc(blank: int) -> CTCObjective:
    """ESPnet "builtin": summed CTC with zero_infinity, divided by the batch size."""

    def objective(
        log_probs: torch.Tensor, ys: torch.Tensor, hlens: torch.Tensor, ys_lens: torch.Tensor
    ) -> torch.Tensor:
        loss = F.ctc_loss(
            log_probs.transpose(0, 1), ys, hlens, ys_lens, blank=blank, reduction="sum", zero_infinity=True
        )
        return loss / log_probs.size(0)

    return objective


def _sactc(blank: int, risk_factor: float, constrain_y: int, speaker_order: str) -> CTCObjective:
    """Speaker-Aware CTC, token-averaged per utterance and batch-averaged as in the released code."""
    return SpeakerAwareCTCLoss(risk_factor, constrain_y, blank, speaker_order, reduction="mean")


class TiedOutput(torch.nn.Module):
    """CTC output layer over a decoder's token embedding E [V, D]: logits = proj(h) · Eᵀ + bias.

    Whisper's 51 867-token vocabulary makes a free Linear(D, V) head 26.6 M new parameters to learn from
    little data (and 53 MB to ship in float16); tied to the pretrained embedding, the head learns only
    proj (D × D) and a bias. Rows below `frozen_rows` (the pretrained ones) take no gradient through this
    head, which also spares the [V, D] weight gradient; the rows after them (`$`, blank) train.
    """

    def __init__(self, size: int, odim: int) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(size, size)
        self.bias = torch.nn.Parameter(torch.zeros(odim))
        self._embedding: list[torch.nn.Embedding] = []  # a plain list: the embedding stays the decoder's
        self.frozen_rows = 0

    @property
    def out_features(self) -> int:
        return self.bias.numel()

    def tie(self, embedding: torch.nn.Embedding, frozen_rows: int) -> None:
        if embedding.weight.shape != (self.bias.numel(), self.proj.out_features):
            raise ValueError(f"embedding {tuple(embedding.weight.shape)} does not fit the CTC head")
        self._embedding[:] = [embedding]
        self.frozen_rows = frozen_rows

    def forward(self, hs: torch.Tensor) -> torch.Tensor:
        if not self._embedding:
            raise RuntimeError("TiedOutput.tie() must run before the head is used")
        weight = self._embedding[0].weight
        weight = torch.cat([weight[: self.frozen_rows].detach(), weight[self.frozen_rows :]])
        return torch.nn.functional.linear(self.proj(hs), weight, self.bias)


class CTC(torch.nn.Module):
    """Linear projection to the vocabulary plus a CTC-family loss chosen by `ctc_type`.

    Args:
        odim: vocabulary size.
        encoder_output_size: encoder model size.
        dropout_rate: dropout before `ctc_lo` (0.0 in ESPnet's CTC; the released SACTC class defaults to 0.1).
        ctc_type: "builtin" (SOT+CTC baseline) or "sactc".
        blank: blank id.
        risk_factor: SACTC λ.
        constrain_y: id of the speaker-change token (`ctc_conf.constrain_y` in the recipe).
        speaker_order: "code" or "paper", see `SpeakerAwareCTCLoss`.
        tied: `ctc_lo` is a `TiedOutput` over the decoder's token embedding (tied by `build_model`)
            instead of a Linear(encoder_output_size, odim).
    """

    OBJECTIVES = ("builtin", "sactc")

    def __init__(
        self,
        odim: int,
        encoder_output_size: int,
        dropout_rate: float = 0.0,
        ctc_type: str = "builtin",
        blank: int = 0,
        risk_factor: float = 15.0,
        constrain_y: int = 2,
        speaker_order: str = "code",
        tied: bool = False,
    ) -> None:
        super().__init__()
        if ctc_type not in self.OBJECTIVES:
            raise ValueError(f"unknown ctc_type {ctc_type!r}; choose from {self.OBJECTIVES}")
        self.ctc_type = ctc_type
        self.blank = blank
        self.constrain_y = constrain_y
        self.dropout = torch.nn.Dropout(dropout_rate)
        self.ctc_lo = (
            TiedOutput(encoder_output_size, odim) if tied else torch.nn.Linear(encoder_output_size, odim)
        )
        factories: dict[str, Callable[[], CTCObjective]] = {
            "builtin": lambda: _builtin_ctc(blank),
            "sactc": lambda: _sactc(blank, risk_factor, constrain_y, speaker_order),
        }
        self.objective = factories[ctc_type]()

    def forward(
        self, hs_pad: torch.Tensor, hlens: torch.Tensor, ys_pad: torch.Tensor, ys_lens: torch.Tensor
    ) -> torch.Tensor:
        """hs_pad [B, T, D], hlens [B], ys_pad [B, U] (padding -1), ys_lens [B] → scalar loss.

        Frames past the longest hlens are dropped first (a Whisper encoder returns its whole window).
        """
        hs_pad = hs_pad[:, : int(hlens.max())]
        log_probs = torch.log_softmax(self.ctc_lo(self.dropout(hs_pad)), dim=-1)
        return self.objective(log_probs, ys_pad.clamp(min=0), hlens, ys_lens)

    def log_softmax(self, hs_pad: torch.Tensor) -> torch.Tensor:
        """[B, T, D] → [B, T, V] frame log-posteriors."""
        return torch.log_softmax(self.ctc_lo(hs_pad), dim=-1)

    def argmax(self, hs_pad: torch.Tensor) -> torch.Tensor:
        """[B, T, D] → [B, T] best token per frame."""
        return self.ctc_lo(hs_pad).argmax(dim=-1)
