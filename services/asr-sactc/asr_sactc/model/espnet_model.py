"""Hybrid CTC/attention SOT model (ESPnet `ESPnetASRModel`): L = w·L_CTC-variant + (1-w)·L_att."""

from collections.abc import Sequence

import torch

from asr_sactc.frontend import DefaultFrontend
from asr_sactc.layers.global_mvn import GlobalMVN
from asr_sactc.layers.specaug import SpecAug
from asr_sactc.model.conformer_encoder import ConformerEncoder
from asr_sactc.model.ctc import CTC
from asr_sactc.model.label_smoothing_loss import LabelSmoothingLoss
from asr_sactc.model.transformer_decoder import TransformerDecoder


def add_sos_eos(
    ys_pad: torch.Tensor, ys_lens: torch.Tensor, sos: Sequence[int], eos: int, ignore_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, U] targets (ignore_id-padded) → decoder input [B, P+U] `sos y` (eos-padded) and output
    [B, P+U] with `y <eos>` at the positions that predict them (ignore_id before and after).

    `sos` is ESPnet's single `<sos>` (P = 1) or a prompt such as Whisper's four start tokens.
    """
    batch, max_u = ys_pad.shape
    prompt = len(sos)
    ys_in = ys_pad.new_full((batch, prompt + max_u), eos)
    ys_out = ys_pad.new_full((batch, prompt + max_u), ignore_id)
    ys_in[:, :prompt] = torch.tensor(list(sos), dtype=ys_pad.dtype, device=ys_pad.device)
    valid = torch.arange(max_u, device=ys_pad.device)[None, :] < ys_lens[:, None]
    ys_in[:, prompt:] = torch.where(valid, ys_pad, eos)
    ys_out[:, prompt - 1 : prompt - 1 + max_u] = torch.where(valid, ys_pad, ignore_id)
    ys_out[torch.arange(batch, device=ys_pad.device), prompt - 1 + ys_lens] = eos
    return ys_in, ys_out


class ESPnetASRModel(torch.nn.Module):
    """Frontend → SpecAug (training) → GlobalMVN → Conformer → {CTC head, Transformer decoder}.

    Submodule names (`frontend`, `normalize`, `encoder`, `decoder`, `ctc`) match ESPnet so its state
    dicts load as they are.

    Args:
        vocab_size: output tokens incl. the CTC blank.
        frontend: log-Mel front-end.
        specaug: SpecAugment or None.
        normalize: global MVN or None.
        encoder: Conformer encoder.
        decoder: attention decoder, or None for a CTC-only model (ctc_weight must then be 1).
        ctc: CTC head with its objective.
        ctc_weight: w in the joint loss (0.3).
        ignore_id: target padding id (-1).
        lsm_weight: label smoothing ε (0.1).
        length_normalized_loss: normalise the attention loss by tokens instead of utterances (False).
        sos: decoder prompt before the first output token (default: ESPnet's `<sos/eos>`, the last id).
        eos: end token (default: the last id).
    """

    def __init__(
        self,
        vocab_size: int,
        frontend: DefaultFrontend,
        specaug: SpecAug | None,
        normalize: GlobalMVN | None,
        encoder: ConformerEncoder,
        decoder: TransformerDecoder | None,
        ctc: CTC,
        ctc_weight: float = 0.3,
        ignore_id: int = -1,
        lsm_weight: float = 0.1,
        length_normalized_loss: bool = False,
        sos: Sequence[int] | None = None,
        eos: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        if decoder is None and ctc_weight != 1.0:
            raise ValueError("a model without decoder needs ctc_weight 1.0")
        self.vocab_size = vocab_size
        self.sos = tuple(sos) if sos is not None else (vocab_size - 1,)
        self.eos = vocab_size - 1 if eos is None else eos
        self.ignore_id = ignore_id
        self.ctc_weight = ctc_weight
        self.frontend = frontend
        self.specaug = specaug
        self.normalize = normalize
        self.encoder = encoder
        self.decoder = decoder
        self.ctc = ctc
        self.criterion_att = LabelSmoothingLoss(vocab_size, ignore_id, lsm_weight, length_normalized_loss)

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N] 16 kHz waveform, [B] samples → [B, T', D] encoder states at 32 ms, [B] lengths."""
        feats, feats_lengths = self.frontend(speech, speech_lengths)
        if self.specaug is not None and self.training:
            feats, feats_lengths = self.specaug(feats, feats_lengths)
        if self.normalize is not None:
            feats, feats_lengths = self.normalize(feats, feats_lengths)
        return self.encoder(feats, feats_lengths)

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Joint training loss.

        Args:
            speech: [B, N] waveform.
            speech_lengths: [B] samples.
            text: [B, U] SOT token ids (`<sc>` between speakers), padded with ignore_id.
            text_lengths: [B] tokens.

        Returns:
            scalar loss and a dict of detached statistics (loss, loss_ctc, loss_att, acc).
        """
        encoder_out, encoder_out_lens = self.encode(speech, speech_lengths)
        return self.forward_encoded(encoder_out, encoder_out_lens, text, text_lengths)

    def forward_encoded(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The joint loss from encoder states [B, T', D] and their valid lengths [B] (cached features)."""
        text = text[:, : int(text_lengths.max())]
        stats: dict[str, float] = {}
        loss_ctc = self.ctc(encoder_out, encoder_out_lens, text, text_lengths)
        stats["loss_ctc"] = float(loss_ctc.detach())
        loss = loss_ctc
        if self.decoder is not None and self.ctc_weight < 1.0:
            ys_in, ys_out = add_sos_eos(text, text_lengths, self.sos, self.eos, self.ignore_id)
            logits = self.decoder(encoder_out, encoder_out_lens, ys_in, text_lengths + len(self.sos))
            loss_att = self.criterion_att(logits, ys_out)
            valid = ys_out != self.ignore_id
            stats["loss_att"] = float(loss_att.detach())
            stats["acc"] = float((logits.argmax(-1)[valid] == ys_out[valid]).float().mean())
            loss = self.ctc_weight * loss_ctc + (1.0 - self.ctc_weight) * loss_att
        stats["loss"] = float(loss.detach())
        return loss, stats
