"""Protobuf plumbing: typed requests from field paths, responses split into artifacts and JSON, Values."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from orate.v1 import common_pb2

PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
RESPONSE = "response"
DEFAULT_MEDIA_TYPE = "application/octet-stream"
# What a bytes field holds when its message does not say (common.proto: "audio/wav unless stated").
MEDIA_TYPE_BY_MESSAGE = {"orate.v1.Audio": "audio/wav", "orate.v1.Video": "video/mp4"}


@dataclass(frozen=True)
class ArtifactBytes:
    """A non-empty bytes field of a response, to be stored as an artifact under its field path."""

    path: str
    data: bytes
    media_type: str


# ---- Values ---------------------------------------------------------------------------------------------


def to_value(value: Any) -> common_pb2.Value:
    """The protobuf Value of a python value: scalars typed, artifact refs kept, anything else as JSON."""
    if isinstance(value, common_pb2.ArtifactRef):
        return common_pb2.Value(artifact=value)
    if isinstance(value, bool):
        return common_pb2.Value(flag=value)
    if isinstance(value, int | float):
        return common_pb2.Value(number=value)
    if isinstance(value, str):
        return common_pb2.Value(text=value)
    return common_pb2.Value(json=json_format.ParseDict(value, struct_pb2.Value()))


def from_value(value: common_pb2.Value) -> Any:
    """The python value of a Value (an ArtifactRef for artifacts, None when unset)."""
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "json":
        return json_format.MessageToDict(value.json)
    return getattr(value, kind)


def replace_map(target: MutableMapping[str, Any], entries: Mapping[str, Message]) -> None:
    """Replace the entries of a protobuf map of messages (such maps cannot be assigned or updated)."""
    target.clear()
    for key, message in entries.items():
        target[key].CopyFrom(message)


# ---- Requests -------------------------------------------------------------------------------------------


def build_request(message_class: type[Message], fields: Mapping[str, Any]) -> Message:
    """A request message from {dotted field path: python value}; bytes fields take bytes, message fields
    take JSON objects (shallower paths are set first, so `audio: {...}` and `audio.data: b"..."` combine).
    Raises ValueError naming the path when a value does not fit its field."""
    message = message_class()
    for path in sorted(fields, key=lambda p: p.count(".")):
        _assign(message, path, fields[path])
    return message


def _assign(message: Message, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    target = message
    for name in parents:
        field = _field(target.DESCRIPTOR, name, path)
        if field.message_type is None or field.is_repeated:
            raise ValueError(f"request field {path!r}: {name!r} is not a singular message field")
        target = getattr(target, name)
    field = _field(target.DESCRIPTOR, leaf, path)
    if field.type == FieldDescriptor.TYPE_BYTES and not field.is_repeated:
        if not isinstance(value, bytes):
            raise ValueError(f"request field {path!r} takes bytes (an artifact), got {type(value).__name__}")
        setattr(target, leaf, value)
        return
    try:
        json_format.ParseDict({leaf: value}, target)
    except json_format.ParseError as exc:
        raise ValueError(f"request field {path!r}: {exc}") from exc


# ---- Responses ------------------------------------------------------------------------------------------


def split_response(message: Message) -> tuple[list[ArtifactBytes], dict[str, Any]]:
    """Every non-empty bytes field (by field path, e.g. samples.0.data_f32) and the rest as JSON with proto
    field names and default values included; the bytes fields are left out of the JSON."""
    stripped = type(message)()
    stripped.CopyFrom(message)
    artifacts: list[ArtifactBytes] = []
    cleared: list[str] = []
    _extract(stripped, "", artifacts, cleared)
    response = json_format.MessageToDict(
        stripped, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for path in cleared:
        _drop(response, path.split("."))
    return artifacts, response


def _extract(message: Message, prefix: str, artifacts: list[ArtifactBytes], cleared: list[str]) -> None:
    for field in message.DESCRIPTOR.fields:
        path = f"{prefix}{field.name}"
        value = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_BYTES:
            blobs = list(enumerate(value)) if field.is_repeated else [(None, value)]
            for index, blob in blobs:
                if blob:
                    item_path = path if index is None else f"{path}.{index}"
                    artifacts.append(ArtifactBytes(item_path, blob, _media_type(message)))
            message.ClearField(field.name)
            cleared.append(path)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            if field.is_repeated:
                for index, item in enumerate(value):
                    _extract(item, f"{path}.{index}.", artifacts, cleared)
            elif message.HasField(field.name):
                _extract(value, f"{path}.", artifacts, cleared)


def _media_type(message: Message) -> str:
    declared = getattr(message, "media_type", "") if "media_type" in message.DESCRIPTOR.fields_by_name else ""
    return declared or MEDIA_TYPE_BY_MESSAGE.get(message.DESCRIPTOR.full_name, DEFAULT_MEDIA_TYPE)


def _drop(node: Any, segments: list[str]) -> None:
    for segment in segments[:-1]:
        node = node[int(segment)] if isinstance(node, list) else node.get(segment)
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(segments[-1], None)


def resolve_output(outputs: Mapping[str, common_pb2.Value], path: str) -> common_pb2.Value:
    """A stage output by path: an artifact path (audio.data), `response`, or a path inside it
    (response.speakers.0.text). Raises KeyError naming what is missing."""
    if path in outputs:
        return outputs[path]
    head, _, rest = path.partition(".")
    if head != RESPONSE or RESPONSE not in outputs:
        raise KeyError(f"no output {path!r} (outputs: {sorted(outputs)})")
    node = from_value(outputs[RESPONSE])
    for segment in rest.split("."):
        try:
            node = node[int(segment)] if isinstance(node, list) else node[segment]
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(f"no output {path!r}: nothing at {segment!r}") from None
    return to_value(node)


# ---- Load-time checks -----------------------------------------------------------------------------------


def check_request_path(descriptor: Descriptor, path: str) -> None:
    """Raise ValueError unless path names a field of the request (through singular message fields)."""
    *parents, leaf = path.split(".")
    for name in parents:
        field = _field(descriptor, name, path)
        if field.message_type is None or field.is_repeated:
            raise ValueError(f"{path!r}: {name!r} is not a singular message field of {descriptor.full_name}")
        descriptor = field.message_type
    _field(descriptor, leaf, path)


def check_output_path(descriptor: Descriptor, path: str) -> None:
    """Raise ValueError unless path is `response`, a path inside it, or the path of a bytes field
    (indices after repeated fields, e.g. samples.0.data_f32)."""
    head, _, rest = path.partition(".")
    if head == RESPONSE:
        if rest:
            _walk_output(descriptor, rest.split("."), path, bytes_leaf=False)
        return
    _walk_output(descriptor, path.split("."), path, bytes_leaf=True)


def _walk_output(descriptor: Descriptor, segments: list[str], path: str, *, bytes_leaf: bool) -> None:
    field: FieldDescriptor | None = None
    index = 0
    while index < len(segments):
        if descriptor is None:
            raise ValueError(f"{path!r}: {segments[index - 1]!r} has no fields")
        field = _field(descriptor, segments[index], path)
        index += 1
        if field.is_repeated and index < len(segments):
            if not segments[index].isdigit():
                raise ValueError(f"{path!r}: {field.name!r} is repeated and needs an index")
            index += 1
        descriptor = field.message_type
    if bytes_leaf and (field is None or field.type != FieldDescriptor.TYPE_BYTES):
        raise ValueError(f"{path!r} is not a bytes field; paths inside the JSON start with {RESPONSE!r}")


def _field(descriptor: Descriptor, name: str, path: str) -> FieldDescriptor:
    field = descriptor.fields_by_name.get(name)
    if field is None:
        raise ValueError(f"{path!r}: {descriptor.full_name} has no field {name!r}")
    return field
