"""The `orate` command: `orate up`, `orate status` and `orate down` for the embedded stack, `orate demo`
for the main jobs, `orate keys ...` for tenants' API keys and quotas, `orate data ...` for the data
studio."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from shared import data_cli
from shared.settings import RedisSettings
from shared.stack.config import load_stack_config
from shared.stack.control import DOWN_TIMEOUT_S, Stack, StackError, StackUrls
from shared.stack.demo import run_demo
from shared.tenants import DEV_TENANT, QuotaLimits, Tenants

# `orate up` keeps the key it made for tenant dev here (owner-only), to print the same one while it works.
DEV_KEY_FILE = "dev-key"


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
    _keys_parser(commands, common)
    return parser


def _keys_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    redis = argparse.ArgumentParser(add_help=False, parents=[common])
    redis.add_argument("--redis-url", default=None, help="the Redis to use (default: the running stack's)")
    keys = commands.add_parser("keys", help="tenants' API keys and quotas (in the stack's Redis)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[redis], help="a new key; prints it, the only time")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for, e.g. acme")
    create.add_argument("--label", default="", help="what the key is for, e.g. ci")
    listing = actions.add_parser("list", parents=[redis], help="keys (ids, never secrets), revoked ones too")
    listing.add_argument("--tenant", default=None, help="only this tenant's keys")
    revoke = actions.add_parser("revoke", parents=[redis], help="revoke a key at once")
    revoke.add_argument("key_id", help="the key id (`orate keys list`; the part after ork_)")
    quota = actions.add_parser("quota", parents=[redis], help="show a tenant's quotas; set them with flags")
    quota.add_argument("tenant")
    for name, field in QuotaLimits.model_fields.items():
        quota.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=field.description)


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
    if args.command == "keys":
        return _keys(args, Stack(config))
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
            urls = stack.up(timeout_s=args.timeout)
        except StackError as exc:
            print(f"orate up failed: {exc}", file=sys.stderr)
            return 1
        print(stack.status().table())
        if urls.api_url is not None:
            print(_dev_key_notice(urls))
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


def _dev_key_notice(urls: StackUrls) -> str:
    """A key for tenant dev (the one `orate up` made before while it still works, else a new one, kept in
    the run dir) and how the API authenticates."""
    path = urls.run_dir / DEV_KEY_FILE
    tenants = Tenants(urls.redis_settings())
    try:
        token = path.read_text().strip() if path.is_file() else ""
        if not token or tenants.authenticate(token) != DEV_TENANT:
            _, token = tenants.create_key(DEV_TENANT, "orate up")
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
                file.write(token + "\n")
    finally:
        tenants.close()
    if urls.env.get("ORATE_API__AUTH", "keys") == "open":
        mode = f"open: a request without a key acts as tenant {DEV_TENANT}"
    else:
        mode = "keys: every /v1 request needs one (`Authorization: Bearer <key>`)"
    return f"API key of tenant {DEV_TENANT}: {token} (kept in {path})\nAPI auth {mode}"


def _keys(args: argparse.Namespace, stack: Stack) -> int:
    try:
        url = args.redis_url or stack.urls().redis_url
    except StackError as exc:
        print(f"orate keys: {exc}; start it or pass --redis-url", file=sys.stderr)
        return 1
    tenants = Tenants(RedisSettings(url=url))
    try:
        return _key_action(args, tenants)
    except ValueError as exc:  # a tenant name or limit that is not valid
        print(f"orate keys: {exc}", file=sys.stderr)
        return 2
    finally:
        tenants.close()


def _key_action(args: argparse.Namespace, tenants: Tenants) -> int:
    if args.action == "create":
        key, token = tenants.create_key(args.tenant, args.label)
        # The key alone on stdout, for KEY=$(orate keys create ...); the rest to stderr.
        print(token)
        print(f"key {key.key_id} of tenant {key.tenant}: keep it now, it is not shown again", file=sys.stderr)
        return 0
    if args.action == "list":
        print(f"{'key id':<18}{'tenant':<22}{'created (UTC)':<22}{'revoked (UTC)':<22}label")
        for key in tenants.list_keys(args.tenant):
            revoked = _utc(key.revoked_unix_ms) if key.revoked_unix_ms else "-"
            print(f"{key.key_id:<18}{key.tenant:<22}{_utc(key.created_unix_ms):<22}{revoked:<22}{key.label}")
        return 0
    if args.action == "revoke":
        if not tenants.revoke_key(args.key_id):
            print(f"orate keys: no key {args.key_id}", file=sys.stderr)
            return 1
        print(f"key {args.key_id} revoked")
        return 0
    given = {name: value for name in QuotaLimits.model_fields if (value := getattr(args, name)) is not None}
    if given:
        tenants.set_limits(args.tenant, **given)
    own = tenants.own_limits(args.tenant)
    for name in QuotaLimits.model_fields:
        value = own[name] if name in own else "the API's default (ORATE_API__QUOTA__" + name.upper() + ")"
        print(f"{args.tenant} {name}: {value}")
    return 0


def _utc(unix_ms: int) -> str:
    return datetime.fromtimestamp(unix_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


if __name__ == "__main__":
    sys.exit(main())
