"""Prometheus helpers shared by every service: the metrics HTTP server and standard latency buckets."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

# Seconds, 1 ms to 60 s in roughly 1-2-5 steps: covers a broker hop (a few ms) up to a video render.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0
)


def start_metrics_server(
    port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics on host:port from a daemon thread; call server.shutdown() to stop it."""
    return start_http_server(port, addr=host, registry=registry)
