"""Container entry point: serve a deployments file's Triton entries (asr-sactc) on all interfaces."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from shared.serving.triton import build_model_repository, triton_command

LOOPBACK = "=127.0.0.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deployments", type=Path, default=Path("/etc/orate/deployments.yaml"))
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/orate"))
    parser.add_argument("--host", default="0.0.0.0", help="address for Triton's HTTP, gRPC and metrics")
    parser.add_argument(
        "--ports", type=int, nargs=3, default=[29500, 29501, 29502], metavar=("HTTP", "GRPC", "METRICS")
    )
    args = parser.parse_args()
    repo = build_model_repository(args.deployments, args.run_dir)
    argv, env = triton_command(repo, args.run_dir, *args.ports)
    # triton_command serves on loopback (the embedded stack); a pod is reached from outside.
    argv = [a.replace(LOOPBACK, f"={args.host}") if a.endswith(LOOPBACK) else a for a in argv]
    os.execve(argv[0], argv, {**os.environ, **env})


if __name__ == "__main__":
    main()
