"""Joining a Ray cluster as a driver, so that a process can call Serve deployments through handles."""

from __future__ import annotations

import logging
import os
import secrets
import time

# The Ray namespace Orate's Serve applications and drivers share.
RAY_NAMESPACE = "orate"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
# Ray swaps 127.0.0.1 for the machine's outward IP (then binds or dials that) unless it treats the host as
# a single-node OSX/Windows one. Ray reads this when it is imported, so it must be in the environment first.
LOOPBACK_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

log = logging.getLogger(__name__)

# How long a driver waits for the cluster's node to register: a runner may start beside the Ray host (in the
# embedded stack, and in Kubernetes) and waits for it rather than crash-looping.
JOIN_WAIT_S = 300.0
# The cluster this process joined, if any. Serve caches its controller and routers per process, so a
# process joins one cluster in its life; tests and benchmarks that start several use a process for each.
_joined: str | None = None


def cluster_token() -> str:
    """The auth token of the Ray clusters this process starts: RAY_AUTH_TOKEN if set, else a fresh one
    put there. Ray reads a process's token once, so one token per process lets its own driver join any
    of them."""
    return os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def driver_environment(auth_token: str, loopback: bool) -> dict[str, str]:
    """What a driver's environment needs before Ray is first imported: Ray reads the auth mode and the
    loopback switch once, at import (a process that imports Ray earlier sets these first, as the tests do)."""
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": auth_token} if auth_token else {}
    # Never start a Ray instance of its own: Serve's router thread calls Ray APIs that would otherwise
    # ray.init() a local cluster when they run after ray.shutdown() (at interpreter exit, say).
    return {**env, "RAY_ENABLE_AUTO_CONNECT": "0", **(LOOPBACK_ONLY_ENV if loopback else {})}


def connect(address: str, auth_token: str) -> None:
    """Join the cluster whose GCS is at address (host:port), once per process."""
    global _joined
    if _joined is not None:
        if _joined != address:
            raise RuntimeError(f"this process already joined the Ray cluster at {_joined}, not {address}")
        return
    loopback = address.rsplit(":", 1)[0] in LOOPBACK_HOSTS
    os.environ.update(driver_environment(auth_token, loopback))
    import ray

    # Over loopback, this driver's own listeners must stay on loopback too.
    node_ip = "127.0.0.1" if loopback else None
    deadline = time.monotonic() + JOIN_WAIT_S
    while True:
        try:
            ray.init(
                address=address,
                namespace=RAY_NAMESPACE,
                logging_level=logging.WARNING,
                log_to_driver=False,
                _node_ip_address=node_ip,
            )
            break
        except ConnectionError as exc:  # the GCS is not up yet, or its node has not registered
            ray.shutdown()
            if time.monotonic() > deadline:
                raise
            log.info("waiting for the Ray cluster at %s (%s)", address, exc)
            time.sleep(1.0)
    _joined = address


def disconnect() -> None:
    """Leave the cluster joined by connect(), if any: call it before stopping that cluster, since a
    driver whose cluster is gone ends its own process once Ray gives up reconnecting."""
    if _joined is None:
        return
    import ray

    ray.shutdown()
