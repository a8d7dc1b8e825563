"""The images build from Debian packages and PyPI (deploy/images/build.sh: mmdebstrap base, the shared
builder, podman build --isolation chroot) and start: containers cannot run here (no CAP_SYS_RESOURCE for the
runtimes), so an image's file system is mounted with buildah and its entry points run under chroot, as the
image's non-root user with the image's environment.

The orchestrator image is built by default. A model image (asr-sactc) installs torch: 10-20 min on 2 cores,
and the gpu variant downloads ~3 GB of CUDA wheels, so it is built only when ORATE_TEST_MODEL_IMAGES names
its variant (`cpu,gpu`); build.sh's environment applies (here: WHEELHOUSE=/opt/wheels TORCH_CPU_INDEX=,
download.pytorch.org being out of reach)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
USER = "65532:65532"
SITE = Path("opt/venv/lib/python3.11/site-packages")


def require_builders() -> None:
    missing = [t for t in ("podman", "buildah", "mmdebstrap") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install -y podman buildah mmdebstrap)")
    if os.geteuid() != 0:
        pytest.skip("building the base (mmdebstrap) and chroot into the image need root")


def inspect(image: str) -> dict:
    out = subprocess.run(["podman", "image", "inspect", image], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


@contextmanager
def built_and_mounted(service: str, variant: str, results: Path) -> Iterator[tuple[str, Path]]:
    """SERVICE's VARIANT built by build.sh under the tag `test`: its reference and its mounted root."""
    env = {**os.environ, "TAG": "test", "VARIANT": variant, "RESULTS": str(results)}
    build = subprocess.run(
        [str(ROOT / "deploy" / "images" / "build.sh"), service], env=env, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    entry = json.loads(results.read_text())["images"][f"{service}:{variant}"]
    assert entry["size_bytes"] > 100e6
    container = subprocess.check_output(["buildah", "from", entry["image"]], text=True).strip()
    try:
        root = subprocess.check_output(["buildah", "mount", container], text=True).strip()
        yield entry["image"], Path(root)
    finally:
        subprocess.run(["buildah", "umount", container], check=False, capture_output=True)
        subprocess.run(["buildah", "rm", container], check=False, capture_output=True)


def run_in(image: str, root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """ARGV under chroot as the image's user, with only the image's environment."""
    env = inspect(image)["Config"]["Env"]
    return subprocess.run(
        ["chroot", f"--userspec={USER}", str(root), "/usr/bin/env", "-i", *env, *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    require_builders()
    with built_and_mounted("orchestrator", "cpu", tmp_path_factory.mktemp("images") / "images.json") as built:
        yield built


@pytest.mark.timeout(1800)
def test_image_runs_as_non_root(orchestrator: tuple[str, Path]) -> None:
    image, root = orchestrator
    config = inspect(image)["Config"]
    assert config["User"] == USER
    assert config["Cmd"] == ["python", "-m", "orchestrator.api"]
    assert (root / "opt" / "venv" / "bin" / "python").exists()


@pytest.mark.timeout(1800)
def test_entry_points_start(orchestrator: tuple[str, Path]) -> None:
    image, root = orchestrator
    runner = run_in(image, root, "python", "-m", "orchestrator.runner", "--help")
    assert runner.returncode == 0, runner.stderr
    assert "--service" in runner.stdout
    # The API and engine take no arguments: importing them loads every module they run (protobuf
    # generated code against the installed runtime included) without reaching Kafka or Redis.
    imports = run_in(image, root, "python", "-c", "import orchestrator.api, orchestrator.engine; print('ok')")
    assert imports.returncode == 0, imports.stderr
    assert imports.stdout.strip() == "ok"


@pytest.mark.timeout(1800)
def test_image_holds_only_the_orchestrator(orchestrator: tuple[str, Path]) -> None:
    _, root = orchestrator
    site = root / SITE
    assert (site / "orchestrator").is_dir()
    assert not (site / "torch").exists()
    # Nothing of the shared builder but the venv: no protoc, no sources, no compiler.
    assert not (site / "grpc_tools").exists()
    assert not (root / "opt" / "protoc").exists()
    assert not (root / "src").exists()
    assert not (root / "usr" / "bin" / "g++").exists()


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_model_image_torch_variant(variant: str, tmp_path: Path) -> None:
    """asr-sactc's torch is the variant's build (CUDA's availability needs a GPU: not checked here) and its
    Triton entry point starts."""
    require_builders()
    wanted = os.environ.get("ORATE_TEST_MODEL_IMAGES", "").split(",")
    if variant not in wanted:
        pytest.skip(
            f"asr-sactc:{variant} installs torch (10-20 min here; gpu: ~3 GB of CUDA wheels): "
            f"set ORATE_TEST_MODEL_IMAGES={variant} to build it"
        )
    with built_and_mounted("asr-sactc", variant, tmp_path / "images.json") as (image, root):
        code = "import torch; print(torch.__version__, torch.version.cuda)"
        torch = run_in(image, root, "python", "-c", code)
        assert torch.returncode == 0, torch.stderr
        version, cuda = torch.stdout.split()
        if variant == "gpu":
            assert re.fullmatch(r"\d+\.\d+", cuda), torch.stdout
            assert "+cpu" not in version
            # The CUDA runtime comes as wheels beside torch; only the driver comes from the node.
            assert list((root / SITE / "nvidia").rglob("libcudart.so*")), "no CUDA runtime in the image"
        else:
            assert (cuda, version.endswith("+cpu")) == ("None", True), torch.stdout
            assert not (root / SITE / "nvidia").exists()
        serve = run_in(image, root, "python", "/opt/orate/asr-sactc/scripts/serve_triton.py", "--help")
        assert serve.returncode == 0, serve.stderr
        assert "--deployments" in serve.stdout
        assert inspect(image)["Config"]["User"] == USER
        assert not (root / "usr" / "bin" / "g++").exists()


def test_skaffold_gpu_profile_builds_the_gpu_variants() -> None:
    """`skaffold run -p gpu` builds, under `<commit>-gpu` tags, every image whose build stage starts from the
    VARIANT's builder with VARIANT=gpu, and only those: the others (no GPU) are the same image either way."""
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    profiles = {p["name"]: {q["path"]: q["value"] for q in p["patches"]} for p in config["profiles"]}
    assert profiles["gpu"]["/build/tagPolicy/customTemplate/template"] == "{{.GIT}}-gpu"
    assert config["build"]["tagPolicy"]["customTemplate"]["template"] == "{{.GIT}}-cpu"
    for i, artifact in enumerate(config["build"]["artifacts"]):
        service = artifact["image"].removeprefix("orate/")
        dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
        by_variant = "FROM ${BUILDER}:${VARIANT} AS build" in dockerfile
        for variant, patches in profiles.items():
            patch = f"/build/artifacts/{i}/custom/buildCommand"
            command = patches.get(patch, artifact["custom"]["buildCommand"])
            assert command.endswith(f"deploy/images/build.sh {service}")
            assert (f"VARIANT={variant}" in command) == by_variant, (variant, service, command)
