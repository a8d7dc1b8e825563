"""The wire form of a streamed prediction over HTTP (Ray Serve's POST <service>/predict_stream): a body of
frames, each a kind byte, a 4-byte big-endian length and that many bytes. The kinds: a chunk, the response
(the last frame of a stream that succeeds), or the reason it failed (the last frame of one that did not:
the HTTP status is sent before the stream, so a failure mid-stream travels as a frame)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

MEDIA_TYPE = "application/x-orate-stream"
CHUNK = b"c"
RESPONSE = b"r"
INVALID = b"i"  # the request can never succeed (InvalidRequest)
ERROR = b"e"  # a failure that may pass on retry
KINDS = frozenset({CHUNK, RESPONSE, INVALID, ERROR})
_HEADER = struct.Struct(">cI")


class FrameError(ValueError):
    """Bytes that are not a stream of frames."""


def encode_frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def read_frames(pieces: Iterable[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """(kind, payload) of each frame as soon as its last byte arrives, from a body read in pieces of any
    size; FrameError for an unknown kind or a body that ends inside a frame."""
    buffer = b""
    for piece in pieces:
        buffer += piece
        while len(buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(buffer)
            if kind not in KINDS:
                raise FrameError(f"unknown frame kind {kind!r}")
            end = _HEADER.size + length
            if len(buffer) < end:
                break
            yield kind, buffer[_HEADER.size : end]
            buffer = buffer[end:]
    if buffer:
        raise FrameError(f"the stream ended inside a frame ({len(buffer)} bytes left over)")
