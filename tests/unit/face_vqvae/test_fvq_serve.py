"""The image entry point: the deploy entries validate, Triton listens outward, Ray gets explicit ports."""

from __future__ import annotations

from pathlib import Path

import pytest
from face_vqvae.serve import ray_argv, triton_argv

from shared.serving.deployments import load_deployments

DEPLOY = Path(__file__).resolve().parents[3] / "services" / "face-vqvae" / "deploy"


@pytest.mark.parametrize("backend", ["triton", "ray"])
def test_deploy_entries_validate_and_name_the_predictor(backend: str) -> None:
    spec = load_deployments(DEPLOY / f"{backend}.yaml").get("face-vqvae")
    assert (spec.backend, spec.predictor) == (backend, "face_vqvae.predictor:FaceVqvaePredictor")
    assert spec.request_type == "orate.v1.FaceVqvaeRequest"


def test_triton_listens_on_the_given_host(tmp_path: Path) -> None:
    pytest.importorskip("pytriton")
    argv, env = triton_argv(DEPLOY / "triton.yaml", tmp_path, [8000, 8001, 8002], "0.0.0.0")
    assert {"--http-address=0.0.0.0", "--grpc-address=0.0.0.0", "--metrics-address=0.0.0.0"} <= set(argv)
    assert "--grpc-port=8001" in argv and "PYTHONPATH" in env
    assert (tmp_path / "triton" / "models" / "face-vqvae" / "config.pbtxt").is_file()


def test_ray_host_ports_follow_the_gcs_port() -> None:
    argv = ray_argv(Path("d.yaml"), [8000, 6379])
    assert argv[argv.index("--serve-port") + 1] == "8000"
    assert argv[argv.index("--object-manager-port") + 1] == "6385"
