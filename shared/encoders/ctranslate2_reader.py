"""Reader for CTranslate2 `model.bin` files: named tensors with their dtypes and shapes, floats as float32."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

# Binary versions 4 and later store an explicit dtype id and a byte count per tensor; earlier files
# (CTranslate2 < 2.0) stored an item size instead and are not worth supporting.
_MIN_BINARY_VERSION = 4
_MAX_BINARY_VERSION = 6

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h); bfloat16 has no numpy dtype
# and is read as its raw 16 bits.
_DTYPES: tuple[tuple[str, np.dtype], ...] = (
    ("float32", np.dtype("<f4")),
    ("int8", np.dtype("i1")),
    ("int16", np.dtype("<i2")),
    ("int32", np.dtype("<i4")),
    ("float16", np.dtype("<f2")),
    ("bfloat16", np.dtype("<u2")),
)


class CTranslate2FormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


@dataclass
class CTranslate2Model:
    """The contents of one `model.bin`: spec header, tensors by name and the stored dtype of each."""

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    stored_dtypes: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


def _unpack(fh: BinaryIO, fmt: str) -> int:
    size = struct.calcsize(fmt)
    raw = fh.read(size)
    if len(raw) != size:
        raise CTranslate2FormatError("unexpected end of file")
    return struct.unpack(fmt, raw)[0]


def _read_string(fh: BinaryIO) -> str:
    # Strings are a uint16 length that counts a trailing NUL, then the UTF-8 bytes and that NUL.
    length = _unpack(fh, "<H")
    raw = fh.read(length)
    if len(raw) != length or not raw.endswith(b"\0"):
        raise CTranslate2FormatError("malformed string")
    return raw[:-1].decode("utf-8")


def _to_numpy(raw: bytes, dtype_name: str, np_dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    array = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
    if dtype_name == "float16":
        return array.astype(np.float32)
    if dtype_name == "bfloat16":
        # bfloat16 is the top half of a float32, so widening is a shift into the high bits.
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np_dtype.newbyteorder("="), copy=True)


def read_ctranslate2_model(path: Path | str, prefixes: Iterable[str] | None = None) -> CTranslate2Model:
    """Read a CTranslate2 `model.bin`; with `prefixes`, keep only tensors whose names start with one of them.

    Floating-point tensors (float32, float16, bfloat16) come back as float32; integer tensors keep their
    type. Aliases whose target was kept appear in `variables` too, sharing the target's array.
    """
    keep = tuple(prefixes) if prefixes is not None else ("",)
    with open(path, "rb") as fh:
        version = _unpack(fh, "<I")
        if not _MIN_BINARY_VERSION <= version <= _MAX_BINARY_VERSION:
            raise CTranslate2FormatError(
                f"{path}: binary version {version} is not supported "
                f"(expected {_MIN_BINARY_VERSION}..{_MAX_BINARY_VERSION})"
            )
        model = CTranslate2Model(version, _read_string(fh), _unpack(fh, "<I"))
        for _ in range(_unpack(fh, "<I")):
            name = _read_string(fh)
            rank = _unpack(fh, "<B")
            shape = tuple(_unpack(fh, "<I") for _ in range(rank))
            type_id = _unpack(fh, "<B")
            num_bytes = _unpack(fh, "<I")
            if type_id >= len(_DTYPES):
                raise CTranslate2FormatError(f"{path}: tensor {name!r} has unknown dtype id {type_id}")
            dtype_name, np_dtype = _DTYPES[type_id]
            if num_bytes != np_dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
                raise CTranslate2FormatError(f"{path}: tensor {name!r} has {num_bytes} bytes for {shape}")
            if not name.startswith(keep):
                fh.seek(num_bytes, 1)
                continue
            raw = fh.read(num_bytes)
            if len(raw) != num_bytes:
                raise CTranslate2FormatError(f"{path}: truncated inside tensor {name!r}")
            model.variables[name] = _to_numpy(raw, dtype_name, np_dtype, shape)
            model.stored_dtypes[name] = dtype_name
        for _ in range(_unpack(fh, "<I")):
            alias, target = _read_string(fh), _read_string(fh)
            model.aliases[alias] = target
            if alias.startswith(keep) and target in model.variables:
                model.variables[alias] = model.variables[target]
                model.stored_dtypes[alias] = model.stored_dtypes[target]
    return model
