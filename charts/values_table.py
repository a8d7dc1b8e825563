"""The chart README's values table, generated from the `# --` comments in charts/orate/values.yaml.

    python charts/values_table.py           rewrite the table in charts/orate/README.md
    python charts/values_table.py --check   exit 1 if the table is stale or a value has no comment

A `# -- sentence` line documents the key right below it. A documented key whose children carry no
comments of their own is one row (its whole value is the default); other mappings are walked into.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent / "orate"
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):(\s|$)")
DOC = re.compile(r"^(\s*)# -- (.+)$")


def key_comments(text: str) -> dict[tuple[str, ...], str]:
    """The comment of each documented key, by its path from the top."""
    comments: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for line in text.splitlines():
        if doc := DOC.match(line):
            pending = (len(doc.group(1)), doc.group(2).strip())
            continue
        key = KEY.match(line)
        if not key:
            continue
        indent = len(key.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key.group(2)))
        if pending and pending[0] == indent:
            comments[tuple(k for _, k in stack)] = pending[1]
        pending = None
    return comments


def rows(
    values: dict, comments: dict[tuple[str, ...], str]
) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """(key, type, default, description) per documented value, and the dotted keys that have no comment."""
    table: list[tuple[str, str, str, str]] = []
    missing: list[str] = []

    def walk(node: dict, path: tuple[str, ...]) -> None:
        for name, value in node.items():
            here = (*path, name)
            documented_children = any(p[: len(here)] == here and len(p) > len(here) for p in comments)
            if isinstance(value, dict) and value and (documented_children or here not in comments):
                walk(value, here)
            elif here in comments:
                kind = {dict: "object", list: "list", bool: "bool", int: "int", float: "float"}.get(
                    type(value), "string"
                )
                table.append((".".join(here), kind, json.dumps(value), comments[here]))
            else:
                missing.append(".".join(here))

    walk(values, ())
    return table, missing


def render(table: list[tuple[str, str, str, str]]) -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, kind, default, description in table:
        cell, text = default.replace("|", "\\|"), description.replace("|", "\\|")
        lines.append(f"| `{key}` | {kind} | `{cell}` | {text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if README.md's table is stale")
    parser.add_argument("--chart", type=Path, default=CHART)
    args = parser.parse_args(argv)
    text = (args.chart / "values.yaml").read_text()
    table, missing = rows(yaml.safe_load(text), key_comments(text))
    if missing:
        print("values without a `# --` comment:", ", ".join(missing), file=sys.stderr)
        return 1
    readme = args.chart / "README.md"
    current = readme.read_text()
    head, _, rest = current.partition(START)
    _, _, tail = rest.partition(END)
    updated = f"{head}{START}\n{render(table)}\n{END}{tail}"
    if args.check:
        if updated != current:
            print(f"{readme} is stale: run python charts/values_table.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
