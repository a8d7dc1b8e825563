"""The `orate` command: `orate up`, `orate status` and `orate down` for the embedded stack, and
`orate demo` for the main jobs, `orate data ...` for the data studio."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from shared import data_cli
from shared.stack.config import load_stack_config
from shared.stack.control import DOWN_TIMEOUT_S, Stack, StackError
from shared.stack.demo import run_demo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orate", description="Run Orate's embedded stack on this machine.")
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", type=Path, default=None, help="logs, pid files, state (default .run)")
    common.add_argument("--config", type=Path, default=None, help="stack config YAML (default: built-in)")
    up = commands.add_parser("up", parents=[common], help="start the stack and wait until it is healthy")
    up.add_argument("--timeout", type=float, default=None, help="seconds to wait for health")
    up.add_argument(
        "--listen-all",
        action="store_true",
        help="start even if some process listens beyond 127.0.0.1/::1 (stack config: listen_all: true)",
    )
    status = commands.add_parser("status", parents=[common], help="show components; non-zero if any is down")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    commands.add_parser("demo", parents=[common], help="start the stack if needed and run the main jobs")
    down = commands.add_parser("down", parents=[common], help="stop the stack")
    down.add_argument("--timeout", type=float, default=DOWN_TIMEOUT_S, help="seconds to wait for the stop")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["data"]:  # the data studio has its own command line
        return data_cli.main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        config = load_stack_config(args.config, args.run_dir)
    except (OSError, ValueError) as exc:
        print(f"orate: bad stack config: {exc}", file=sys.stderr)
        return 2
    if args.command == "up" and args.listen_all:
        config = config.model_copy(update={"listen_all": True})
    stack = Stack(config)
    if args.command == "up":
        if config.listen_all:
            print(
                "warning: listen_all: the stack starts even if some of its processes listen beyond"
                " 127.0.0.1/::1, where other machines may connect to them",
                file=sys.stderr,
            )
        try:
            stack.up(timeout_s=args.timeout)
        except StackError as exc:
            print(f"orate up failed: {exc}", file=sys.stderr)
            return 1
        print(stack.status().table())
        print(f"stack is up; logs in {stack.run_dir / 'logs'}")
        print(f"stop it with: orate down --run-dir {stack.run_dir}")
        return 0
    if args.command == "demo":
        try:
            return run_demo(stack)
        except StackError as exc:
            print(f"orate demo failed: {exc}", file=sys.stderr)
            return 1
    if args.command == "status":
        status = stack.status()
        if args.json:
            print(json.dumps({**asdict(status), "ok": status.ok}, indent=2, default=str))
        else:
            print(status.table())
        return 0 if status.ok else 1
    stack.down(timeout_s=args.timeout)
    print(f"stack in {stack.run_dir} stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
