"""Helpers for tests: free ports outside Ray's worker range and the Linux ephemeral range."""

from __future__ import annotations

import random
import socket

# Ray's workers take 10002-19999 and the kernel hands out 32768+; pick between them.
PORT_RANGE = (20000, 32000)


def free_port() -> int:
    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")
