"""The image's entry point: serve the deployments file's face-vqvae entry on its backend (Triton or Ray)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared.serving.deployments import load_deployments

SERVICE = "face-vqvae"


def triton_argv(
    deployments: Path, run_dir: Path, ports: list[int], host: str
) -> tuple[list[str], dict[str, str]]:
    """tritonserver's argv and environment for the file's triton entries (model repository in run_dir)."""
    from shared.serving.triton import build_model_repository, triton_command

    repository = build_model_repository(deployments, run_dir)
    argv, env = triton_command(repository, run_dir, *ports)
    # The shared command binds loopback, right for the embedded stack; a container must listen outward.
    listeners = ("--http-address=", "--grpc-address=", "--metrics-address=")
    return [f"{a.split('=')[0]}={host}" if a.startswith(listeners) else a for a in argv], env


def ray_argv(deployments: Path, ports: list[int]) -> list[str]:
    """The Ray host's argv: Serve on ports[0], the GCS on ports[1] and Ray's listeners on the next five."""
    serve, gcs = ports[0], ports[1]
    return [
        *(sys.executable, "-m", "shared.serving.ray_host", "--deployments", str(deployments)),
        *("--serve-port", str(serve), "--gcs-port", str(gcs), "--metrics-port", str(gcs + 1)),
        *("--dashboard-agent-ports", str(gcs + 2), str(gcs + 3), str(gcs + 4)),
        *("--node-manager-port", str(gcs + 5), "--object-manager-port", str(gcs + 6)),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deployments", type=Path, required=True, help="a file with a face-vqvae entry")
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/orate"), help="Triton model repository")
    parser.add_argument("--host", default="0.0.0.0", help="Triton's listening address (Ray's is loopback)")
    parser.add_argument(
        "--ports",
        type=int,
        nargs="+",
        help="triton: HTTP gRPC metrics (default 8000 8001 8002); ray: Serve GCS (default 8000 6379)",
    )
    args = parser.parse_args(argv)
    backend = load_deployments(args.deployments).get(SERVICE).backend
    # Replacing this process lets the container's signals reach the server directly.
    if backend == "triton":
        command, env = triton_argv(
            args.deployments, args.run_dir, args.ports or [8000, 8001, 8002], args.host
        )
        os.execve(command[0], command, {**os.environ, **env})
    command = ray_argv(args.deployments, args.ports or [8000, 6379])
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
