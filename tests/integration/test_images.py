"""The orchestrator image builds from Debian packages and PyPI (deploy/images/build.sh: mmdebstrap base,
podman build --isolation chroot) and starts: containers cannot run here (no CAP_SYS_RESOURCE for the
runtimes), so its file system is mounted with buildah and its entry points run under chroot, as the
image's non-root user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/orate/orchestrator:test-cpu"
USER = "65532:65532"
ENV = ["PATH=/opt/venv/bin:/usr/bin:/bin", "HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1"]


def require_builders() -> None:
    missing = [t for t in ("podman", "buildah", "mmdebstrap") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install -y podman buildah mmdebstrap)")
    if os.geteuid() != 0:
        pytest.skip("building the base (mmdebstrap) and chroot into the image need root")


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The built image's root file system, mounted read-only in spirit: nothing here writes to it."""
    require_builders()
    results = tmp_path_factory.mktemp("images") / "images.json"
    env = {**os.environ, "TAG": "test", "VARIANT": "cpu", "RESULTS": str(results)}
    build = subprocess.run(
        [str(ROOT / "deploy" / "images" / "build.sh"), "orchestrator"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    size = json.loads(results.read_text())["images"]["orchestrator:cpu"]["size_bytes"]
    assert size > 100e6
    container = subprocess.check_output(["buildah", "from", IMAGE], text=True).strip()
    try:
        yield Path(subprocess.check_output(["buildah", "mount", container], text=True).strip())
    finally:
        subprocess.run(["buildah", "umount", container], check=False, capture_output=True)
        subprocess.run(["buildah", "rm", container], check=False, capture_output=True)


def run_in(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", f"--userspec={USER}", str(root), "/usr/bin/env", "-i", *ENV, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(1800)
def test_image_runs_as_non_root(image_root: Path) -> None:
    info = subprocess.run(["podman", "image", "inspect", IMAGE], capture_output=True, text=True, check=True)
    config = json.loads(info.stdout)[0]["Config"]
    assert config["User"] == USER
    assert config["Cmd"] == ["python", "-m", "orchestrator.api"]
    assert (image_root / "opt" / "venv" / "bin" / "python").exists()


@pytest.mark.timeout(1800)
def test_entry_points_start(image_root: Path) -> None:
    runner = run_in(image_root, "python", "-m", "orchestrator.runner", "--help")
    assert runner.returncode == 0, runner.stderr
    assert "--service" in runner.stdout
    # The API and engine take no arguments: importing them loads every module they run (protobuf
    # generated code against the installed runtime included) without reaching Kafka or Redis.
    imports = run_in(image_root, "python", "-c", "import orchestrator.api, orchestrator.engine; print('ok')")
    assert imports.returncode == 0, imports.stderr
    assert imports.stdout.strip() == "ok"


@pytest.mark.timeout(1800)
def test_image_holds_only_the_orchestrator(image_root: Path) -> None:
    site = image_root / "opt" / "venv" / "lib" / "python3.11" / "site-packages"
    assert (site / "orchestrator").is_dir()
    assert not (site / "torch").exists()
    assert not (site / "grpc_tools").exists()
    assert not (image_root / "src").exists()
