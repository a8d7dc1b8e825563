"""The embedded stack's configuration: ports, deployments file, pipeline dirs and what to start."""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from shared.testing import PORT_RANGE

# Every server binds loopback only: the embedded stack is a single-machine development setup whose Redis,
# broker, Triton and Ray Serve proxy have no authentication (the supervisor refuses to start one that
# listens elsewhere; see listen_all).
HOST = "127.0.0.1"
# Ports the Ray host takes from ray_gcs on (GCS, metrics, agents, node and object managers).
RAY_PORT_BLOCK = 10


class StackPorts(BaseModel):
    """Ports on 127.0.0.1; the defaults stay outside Ray's worker range 10002-19999."""

    model_config = ConfigDict(extra="forbid")

    kafka: int = 29092
    redis: int = 29379
    ray_gcs: int = Field(29380, description="Ray's GCS; Ray's other listeners take the ports right after")
    ray_serve: int = 29400
    triton_http: int = 29500
    triton_grpc: int = 29501
    triton_metrics: int = 29502
    api_http: int = 29600
    api_grpc: int = 29601
    engine_metrics: int = 29610
    runner_metrics: int = Field(29620, description="the i-th deployment's runner serves metrics on this + i")
    prometheus: int = 29090


def _free_block(size: int, taken: set[int]) -> int:
    """The first port of size consecutive ports that are free now and not in taken."""
    for _ in range(500):
        base = random.randrange(PORT_RANGE[0], PORT_RANGE[1] - size)
        block = range(base, base + size)
        if taken.isdisjoint(block) and all(_bindable(port) for port in block):
            taken.update(block)
            return base
    raise RuntimeError(f"no {size} consecutive free ports in {PORT_RANGE}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_stack_ports(runners: int = 16) -> StackPorts:
    """Ports for a test stack, free now, in the range shared.testing.free_port uses: the blocks after
    ray_gcs (Ray's other listeners) and runner_metrics (one port per runner) are free as well."""
    taken: set[int] = set()
    blocks = {"ray_gcs": RAY_PORT_BLOCK, "runner_metrics": runners}
    return StackPorts(**{name: _free_block(blocks.get(name, 1), taken) for name in StackPorts.model_fields})


class StackConfig(BaseModel):
    """What `orate up` starts. Relative paths are resolved against the working directory. A YAML
    file sets any subset, e.g. a broker and Redis only, on ports of its own:

        ports: {kafka: 21092, redis: 21379}
        deployments_file: my-deployments.yaml   # missing file = no model deployments
        orchestrator: false
        prometheus: false

    The broker (noida-db) and Redis keep their data under run_dir (kafka/, redis/), so `orate down`
    then `orate up` keeps accepted jobs; retention and the deletion of consumed records bound the
    broker (broker_retention_s, broker_events_retention_s).
    """

    model_config = ConfigDict(extra="forbid")

    run_dir: Path = Path(".run")
    ports: StackPorts = StackPorts()
    deployments_file: Path = Path("deploy/embedded/deployments.yaml")
    pipeline_dirs: list[Path] = [Path("services/orchestrator/orchestrator/pipelines")]
    orchestrator: bool = Field(True, description="start the API, the engine and one runner per deployment")
    model_servers: bool = Field(True, description="start Ray Serve / Triton for the deployments on them")
    prometheus: bool = Field(True, description="start Prometheus when a `prometheus` binary is on PATH")
    broker: Literal["noida-db", "tansu"] = Field(
        "noida-db",
        description="the embedded broker: noida-db (durable, bounded: the default) or tansu (memory only, "
        "everything is lost when it stops, and it slows as partitions fill: the old default, kept so that "
        "`loadtests/spine_overhead.py --brokers` can measure both in one run; needs the dev extra)",
    )
    topic_prefix: str = "orate"
    partitions: int = Field(6, ge=1)
    broker_retention_s: float = Field(
        3600.0,
        gt=0,
        description="retention of the jobs, work and dead-letter topics: an accepted job must be picked "
        "up within it (across `orate down`/`orate up` too); the engine and runners delete what they "
        "have committed, so these hold their backlog",
    )
    broker_events_retention_s: float = Field(
        60.0,
        gt=0,
        description="retention of the events topic, whose readers the stack does not know (the API "
        "serves job histories from Redis): an event consumer must keep up within it",
    )
    artifacts_root: Path | None = Field(None, description="default: <run_dir>/artifacts")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra environment for every process; the ORATE_ settings the stack derives win",
    )
    startup_timeout_s: float = Field(240.0, gt=0, description="how long `orate up` waits for health")
    restart_backoff_s: float = Field(0.5, gt=0, description="first restart delay; doubles per crash")
    restart_backoff_max_s: float = Field(30.0, gt=0)
    stop_grace_s: float = Field(10.0, gt=0, description="SIGTERM -> SIGKILL delay (Ray gets twice this)")
    # Only the API checks keys: Redis, the broker, Triton and Ray Serve's proxy do not, so by default
    # `orate up` fails when any of its processes listens beyond loopback, where other machines could reach it.
    listen_all: bool = Field(
        False, description="start even if some process listens beyond 127.0.0.1/::1 (`orate up --listen-all`)"
    )
    auth: Literal["open", "keys"] = Field(
        "open",
        description="the API's auth: open (development: a request without a key acts as tenant dev;"
        " `orate up` prints a dev key) or keys (every request needs one, as in production)",
    )

    def resolved(self, base: Path | None = None) -> StackConfig:
        """A copy with every path absolute (relative ones taken from base, default the cwd)."""
        base = (base or Path.cwd()).resolve()
        run_dir = (base / self.run_dir).resolve()
        return self.model_copy(
            update={
                "run_dir": run_dir,
                "deployments_file": (base / self.deployments_file).resolve(),
                "pipeline_dirs": [(base / d).resolve() for d in self.pipeline_dirs],
                "artifacts_root": (base / self.artifacts_root).resolve()
                if self.artifacts_root
                else run_dir / "artifacts",
            }
        )


def load_stack_config(path: Path | None = None, run_dir: Path | None = None) -> StackConfig:
    """The config from a YAML file (defaults for what it leaves out; all defaults without a file),
    with run_dir overriding the file's, resolved to absolute paths."""
    data = {}
    if path is not None:
        loaded = yaml.safe_load(path.read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: a stack config must be a mapping")
        data = loaded or {}
    config = StackConfig.model_validate(data)
    if run_dir is not None:
        config = config.model_copy(update={"run_dir": run_dir})
    return config.resolved()
