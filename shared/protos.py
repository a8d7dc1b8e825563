"""Look up generated protobuf message classes by full name (e.g. orate.v1.FaceVqvaeRequest)."""

from __future__ import annotations

import importlib

from google.protobuf import message_factory, symbol_database
from google.protobuf.message import Message

CORE_MODULES = ("orate.v1.common_pb2", "orate.v1.jobs_pb2", "orate.v1.models_pb2")


def import_proto_modules(extra: list[str] | tuple[str, ...] = ()) -> None:
    """Register the core messages and any extra generated modules in the default pool."""
    for name in (*CORE_MODULES, *extra):
        importlib.import_module(name)


def message_class(full_name: str, extra_modules: list[str] | tuple[str, ...] = ()) -> type[Message]:
    import_proto_modules(extra_modules)
    pool = symbol_database.Default().pool
    try:
        descriptor = pool.FindMessageTypeByName(full_name)
    except KeyError as exc:
        raise KeyError(f"unknown protobuf message type {full_name!r}") from exc
    return message_factory.GetMessageClass(descriptor)
