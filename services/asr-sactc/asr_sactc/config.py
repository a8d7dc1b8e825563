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
from asr_sactc.tokenizer import TOKENIZERS, Tokenizer

FRONTENDS = {"default": DefaultFrontend}
SPECAUGS = {"specaug": SpecAug}
NORMALIZES = {"global_mvn": GlobalMVN}
ENCODERS = {"conformer": ConformerEncoder}
DECODERS = {"transformer": TransformerDecoder}


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


def build_model(config: dict[str, Any], vocab_size: int) -> ESPnetASRModel:
    """Instantiate frontend, specaug, normalize, encoder, decoder and CTC head from the config."""
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
    ctc = CTC(vocab_size, encoder.output_size(), **(config.get("ctc_conf") or {}))
    return ESPnetASRModel(
        vocab_size, frontend, specaug, normalize, encoder, decoder, ctc, **(config.get("model_conf") or {})
    )
