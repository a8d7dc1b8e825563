"""Embedded Ray host: a local Ray node on explicit ports running one Serve application per ray deployment."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import shared
from shared.serving.deployments import DeploymentsFile, load_deployments
from shared.serving.ray_driver import LOOPBACK_ONLY_ENV, RAY_NAMESPACE, cluster_token

if TYPE_CHECKING:
    import ray._private.node

logger = logging.getLogger("orate.ray_host")


def ray_environment(deployments: DeploymentsFile) -> dict[str, str]:
    """Environment the Ray processes inherit from this host."""
    roots = [str(Path(shared.__file__).resolve().parent.parent), *deployments.python_path]
    inherited = os.environ.get("PYTHONPATH")
    return {
        "RAY_USAGE_STATS_ENABLED": "0",
        # Every Ray address on loopback (see LOOPBACK_ONLY_ENV).
        **LOOPBACK_ONLY_ENV,
        # Serve's HAProxy mode, if the caller's environment turned it on, would bind Serve's HTTP servers
        # on every interface whatever http_options say (ray/serve/_private/constants.py).
        "RAY_SERVE_ENABLE_HA_PROXY": "0",
        # The autoscaler's and dashboard head's own metrics servers default to fixed ports (44217, 44227)
        # that two local Ray instances would fight over; 0 lets the kernel pick.
        "AUTOSCALER_METRIC_PORT": "0",
        "DASHBOARD_METRIC_PORT": "0",
        # Ray 2.60 enables token auth and keeps one token per user in ~/.ray/auth_token. A token per host
        # (the caller's RAY_AUTH_TOKEN, else a fresh one), passed to every Ray process in the environment,
        # keeps auth on (Serve replicas' internal gRPC servers check it) without a shared file;
        # drivers that call deployments through handles join with the same token. Serve's HTTP proxy and
        # the metrics port are not token-protected, so HTTP clients and Prometheus need nothing.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": cluster_token(),
        # Replicas unpickle the spec and import predictors and proto modules: give workers the same roots.
        "PYTHONPATH": os.pathsep.join([*roots, inherited] if inherited else roots),
    }


# Where Ray 2.60's Serve replica starts its inter-deployment gRPC server (the one by-value handle calls,
# as the runners make, reach): "[::]:0" hard-coded in Replica._on_initialized
# (ray/serve/_private/replica.py), read by no constant or environment variable.
_REPLICA_GRPC_WILDCARD = "[::]"


def bind_replica_grpc_to_node_ip() -> None:
    """Ray worker setup hook: a Serve replica's internal gRPC server binds the node's IP (127.0.0.1
    here) instead of every interface. Routers dial the replica at that IP (the controller publishes the
    replica's node IP with its port), so calls still reach it."""
    import ray
    from ray.serve._private import replica

    add_port = replica.add_port_to_grpc_server

    def add_port_on_node_ip(server: object, address: str) -> int:
        host, port = address.rsplit(":", 1)
        if host == _REPLICA_GRPC_WILDCARD:
            address = f"{ray.util.get_node_ip_address()}:{port}"
        return add_port(server, address)

    replica.add_port_to_grpc_server = add_port_on_node_ip


def start_head_node(args: argparse.Namespace) -> ray._private.node.Node:
    """The head node's processes on the given ports (what `ray start --head` does, without its global
    ray_current_cluster file that would make other local drivers attach to this node)."""
    import ray._private.node
    import ray._private.parameter

    grpc_port, http_port, runtime_env_port = args.dashboard_agent_ports
    params = ray._private.parameter.RayParams(
        node_ip_address="127.0.0.1",
        num_cpus=args.num_cpus,
        object_store_memory=args.object_store_mb * 1024 * 1024,
        include_dashboard=False,
        dashboard_host="127.0.0.1",
        gcs_server_port=args.gcs_port,
        node_manager_port=args.node_manager_port,
        object_manager_port=args.object_manager_port,
        metrics_export_port=args.metrics_port,
        metrics_agent_port=grpc_port,
        dashboard_agent_listen_port=http_port,
        runtime_env_agent_port=runtime_env_port,
        temp_dir=str(args.temp_dir) if args.temp_dir else None,
    )
    # spawn_reaper: a watchdog that kills the node's processes if this host dies without cleaning up.
    return ray._private.node.Node(params, head=True, shutdown_at_exit=False, spawn_reaper=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deployments", type=Path, required=True, help="deployments YAML file")
    parser.add_argument("--serve-port", type=int, required=True, help="Serve HTTP proxy on 127.0.0.1")
    parser.add_argument("--gcs-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True, help="Prometheus metrics export")
    parser.add_argument(
        "--dashboard-agent-ports", type=int, nargs=3, required=True, metavar=("GRPC", "HTTP", "RUNTIME_ENV")
    )
    # 0 lets the kernel pick from its ephemeral range (32768+), clear of Ray's worker range and free_port().
    parser.add_argument("--node-manager-port", type=int, default=0)
    parser.add_argument("--object-manager-port", type=int, default=0)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--object-store-mb", type=int, default=256)
    parser.add_argument("--temp-dir", type=Path, default=None, help="Ray session files (default /tmp/ray)")
    return parser.parse_args(argv)


def serve_until_stopped(args: argparse.Namespace, deployments: DeploymentsFile) -> None:
    """Start the node and Serve, deploy, print READY, and block until SIGTERM or SIGINT."""
    import ray
    from ray import serve

    from shared.serving.ray_serve import LOGGING, application

    specs = [spec for spec in deployments.deployments if spec.backend == "ray"]
    stop = threading.Event()
    node = start_head_node(args)
    try:
        ray.init(
            address=node.address,
            _node_ip_address="127.0.0.1",
            namespace=RAY_NAMESPACE,
            # Ray's documented per-worker hook; the job's runtime env reaches every actor it starts,
            # the Serve controller and, through it, the replicas.
            runtime_env={"worker_process_setup_hook": "shared.serving.ray_host.bind_replica_grpc_to_node_ip"},
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        serve.start(http_options={"host": "127.0.0.1", "port": args.serve_port}, logging_config=LOGGING)
        if specs:
            serve.run_many(
                [
                    serve.RunTarget(application(s, deployments), name=s.service, route_prefix=f"/{s.service}")
                    for s in specs
                ]
            )
        logger.info("serving %s on http://127.0.0.1:%d", [s.service for s in specs], args.serve_port)
        print("READY", flush=True)
        stop.wait()
        logger.info("stopping")
    finally:
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        node.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    deployments = load_deployments(args.deployments)
    # Ray reads some of these when it is imported, so ray is imported only after they are set.
    os.environ.update(ray_environment(deployments))
    # A stray RAY_ADDRESS would point the driver at some other cluster.
    os.environ.pop("RAY_ADDRESS", None)
    serve_until_stopped(args, deployments)


if __name__ == "__main__":
    main()
