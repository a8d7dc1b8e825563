"""Load the SOT+SACTC model once and turn batches of mixtures into per-speaker transcripts."""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soxr
import torch

from asr_sactc.beam_search import greedy_ctc, joint_beam_search
from asr_sactc.checkpoints import load_espnet_state_dict
from asr_sactc.config import build_model, build_tokenizer, load_config
from asr_sactc.model.espnet_model import ESPnetASRModel
from asr_sactc.sot import split_sot_text

Decoder = Callable[[ESPnetASRModel, torch.Tensor, int, dict], list[int]]


def _max_len(length: int, conf: dict) -> int | None:
    # ESPnet's maxlenratio: at most ratio × frames output tokens (0: the frames themselves).
    ratio = conf.get("maxlenratio", 0.0)
    return max(1, int(ratio * length)) if ratio > 0 else None


def _decode_joint(model: ESPnetASRModel, encoder_out: torch.Tensor, length: int, conf: dict) -> list[int]:
    beam, weight = conf.get("beam_size", 10), conf.get("ctc_weight", 0.3)
    return joint_beam_search(model, encoder_out, beam, weight, _max_len(length, conf), length)[0].yseq


def _decode_ctc(model: ESPnetASRModel, encoder_out: torch.Tensor, length: int, conf: dict) -> list[int]:
    return joint_beam_search(model, encoder_out, conf.get("beam_size", 10), 1.0, length=length)[0].yseq


def _decode_attention(model: ESPnetASRModel, encoder_out: torch.Tensor, length: int, conf: dict) -> list[int]:
    beam = conf.get("beam_size", 10)
    return joint_beam_search(model, encoder_out, beam, 0.0, _max_len(length, conf), length)[0].yseq


def _decode_greedy(model: ESPnetASRModel, encoder_out: torch.Tensor, length: int, conf: dict) -> list[int]:
    return greedy_ctc(model.ctc.log_softmax(encoder_out[None, :length])[0], length, model.ctc.blank)


DECODERS: dict[str, Decoder] = {
    "joint": _decode_joint,
    "attention": _decode_attention,
    "ctc": _decode_ctc,
    "greedy": _decode_greedy,
}


class SACTCRecognizer:
    """Model-level inference: `transcribe(waveforms)` → one list of speaker transcripts per input (SOT order).

    Free of serving code: the service's `shared.serving.Predictor` should wrap it and own the protobuf types.

    Args:
        config_path: YAML config (the one written next to the trained model).
        model_path: ESPnet-layout weights; None keeps the random initialisation (tests only).
        device: torch device.
        decode: "joint" (CTC/attention beam search, as in the paper), "attention" (attention beam search
            without CTC, the paper's AED-only rows), "ctc" (CTC prefix beam search over the
            whole vocabulary, Table I's CTC rows) or "greedy" (CTC best path, fast).
    """

    def __init__(
        self,
        config_path: str | Path,
        model_path: str | Path | None = None,
        device: str = "cpu",
        decode: str = "joint",
    ) -> None:
        if decode not in DECODERS:
            raise ValueError(f"unknown decode {decode!r}; choose from {sorted(DECODERS)}")
        config = load_config(config_path)
        self.tokenizer = build_tokenizer(config, Path(config_path).parent)
        self.model = build_model(config, len(self.tokenizer.token_list), self.tokenizer.ids)
        if model_path is not None:
            load_espnet_state_dict(self.model, model_path)
        self.model.to(device).eval()
        self.device = torch.device(device)
        self.sample_rate = self.model.frontend.fs
        self.decode_conf = dict(config.get("decode_conf") or {})
        self._decode = DECODERS["greedy" if self.model.decoder is None else decode]

    @torch.no_grad()
    def transcribe(
        self, waveforms: Sequence[np.ndarray], sample_rate: int = 16000, beam_size: int | None = None
    ) -> list[list[str]]:
        """Mono float waveforms [N] in [-1, 1] at `sample_rate` Hz → per-speaker transcripts in SOT order.

        beam_size overrides the config's `decode_conf.beam_size` for joint decoding (greedy has no beam).
        """
        conf = self.decode_conf if beam_size is None else {**self.decode_conf, "beam_size": beam_size}
        if sample_rate != self.sample_rate:
            waveforms = [soxr.resample(w, sample_rate, self.sample_rate) for w in waveforms]
        lengths = torch.tensor([len(w) for w in waveforms])
        speech = torch.zeros(len(waveforms), int(lengths.max()))
        for i, w in enumerate(waveforms):
            speech[i, : len(w)] = torch.as_tensor(np.asarray(w, dtype=np.float32))
        encoder_out, encoder_lens = self.model.encode(speech.to(self.device), lengths.to(self.device))
        results = []
        for enc, n in zip(encoder_out, encoder_lens, strict=True):
            ids = self._decode(self.model, enc, int(n), conf)
            results.append(split_sot_text(self.tokenizer.ids2text(ids)))
        return results
