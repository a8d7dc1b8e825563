"""Build the model and tokenizer from an ESPnet-style YAML config (`encoder: conformer` + `encoder_conf:`)."""

from pathlib import Path
from typing import Any

import yaml

from asr_sactc.frontend import DefaultFrontend
from asr_sactc.layers.global_mvn import GlobalMVN
from asr_sactc.layers.specaug import SpecAug
from asr_sactc.model.conformer_encoder import ConformerEncoder
from asr_sactc.model.ctc import CTC
from asr_sactc.model.espnet_model import ESPnetASRModel
from asr_sactc.model.transformer_decoder import TransformerDecoder
from asr_sactc.model.whisper_decoder import OpenAIWhisperDecoder
from asr_sactc.model.whisper_encoder import OpenAIWhisperEncoder
from asr_sactc.model.whisper_frontend import WhisperFrontend
from asr_sactc.tokenizer import TOKENIZERS, TokenIds, Tokenizer

FRONTENDS = {"default": DefaultFrontend, "whisper": WhisperFrontend}
SPECAUGS = {"specaug": SpecAug}
NORMALIZES = {"global_mvn": GlobalMVN}
ENCODERS = {"conformer": ConformerEncoder, "whisper": OpenAIWhisperEncoder}
DECODERS = {"transformer": TransformerDecoder, "whisper": OpenAIWhisperDecoder}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config into a dict."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _choose(registry: dict[str, type], name: str | None, part: str) -> type | None:
    if name is None:
        return None
    if name not in registry:
        raise ValueError(f"unknown {part} {name!r}; choose from {sorted(registry)}")
    return registry[name]


def build_tokenizer(config: dict[str, Any], base_dir: str | Path | None = None) -> Tokenizer:
    """Tokenizer named by `token_type` ("char" or "bpe"), with `tokenizer_conf` as its arguments.

    Relative paths in `tokenizer_conf.bpemodel` are resolved against base_dir (the config's folder).
    """
    token_type = config.get("token_type", "char")
    cls = _choose(TOKENIZERS, token_type, "token_type")
    conf = dict(config.get("tokenizer_conf") or {})
    if "bpemodel" in conf and base_dir is not None and not Path(conf["bpemodel"]).is_absolute():
        conf["bpemodel"] = str(Path(base_dir) / conf["bpemodel"])
    return cls(**conf)


def build_model(config: dict[str, Any], vocab_size: int, token_ids: TokenIds | None = None) -> ESPnetASRModel:
    """Instantiate frontend, specaug, normalize, encoder, decoder and CTC head from the config.

    token_ids (the tokenizer's `ids`) place blank, `$` and the decoder's start and end tokens; None is the
    recipe's layout. A `ctc_conf.blank` or `constrain_y` in the config must agree with them.
    """
    ids = token_ids or TokenIds.recipe(vocab_size)
    ctc_conf = dict(config.get("ctc_conf") or {})
    for key, value in (("blank", ids.blank), ("constrain_y", ids.sc)):
        if ctc_conf.setdefault(key, value) != value:
            raise ValueError(f"ctc_conf.{key} is {ctc_conf[key]} but the tokenizer puts it at id {value}")
    frontend = _choose(FRONTENDS, config.get("frontend", "default"), "frontend")(
        **(config.get("frontend_conf") or {})
    )
    specaug_cls = _choose(SPECAUGS, config.get("specaug"), "specaug")
    specaug = specaug_cls(**(config.get("specaug_conf") or {})) if specaug_cls else None
    normalize_cls = _choose(NORMALIZES, config.get("normalize"), "normalize")
    normalize = (
        normalize_cls(frontend.output_size(), **(config.get("normalize_conf") or {}))
        if normalize_cls
        else None
    )
    encoder = _choose(ENCODERS, config.get("encoder", "conformer"), "encoder")(
        frontend.output_size(), **(config.get("encoder_conf") or {})
    )
    decoder_cls = _choose(DECODERS, config.get("decoder"), "decoder")
    decoder = (
        decoder_cls(vocab_size, encoder.output_size(), **(config.get("decoder_conf") or {}))
        if decoder_cls
        else None
    )
    ctc = CTC(vocab_size, encoder.output_size(), **ctc_conf)
    if ctc_conf.get("tied"):
        if decoder is None or not hasattr(decoder, "token_embedding"):
            raise ValueError("ctc_conf.tied needs a decoder with a token embedding (decoder: whisper)")
        ctc.ctc_lo.tie(decoder.token_embedding, decoder.pretrained_rows)
    model_conf = {**(config.get("model_conf") or {}), "sos": ids.sos, "eos": ids.eos}
    return ESPnetASRModel(vocab_size, frontend, specaug, normalize, encoder, decoder, ctc, **model_conf)
