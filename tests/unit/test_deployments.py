"""Deployment specs: loading and validating the YAML, building predictors, and the Triton model repository."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format

from shared.serving.deployments import DeploymentError, build_predictor, load_deployments

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEPLOYMENTS = FIXTURES / "deployments.yaml"

SLEEPER = {
    "service": "sleepy",
    "backend": "ray",
    "predictor": "fixture_predictors:Sleeper",
    "request_type": "orate.fixtures.v1.SleepRequest",
    "response_type": "orate.fixtures.v1.SleepResponse",
}


def write_deployments(tmp_path: Path, *deployments: dict) -> Path:
    path = tmp_path / "deployments.yaml"
    document = {
        "python_path": [str(FIXTURES), str(FIXTURES / "proto")],
        "proto_modules": ["orate_fixtures.v1.fixtures_pb2"],
        "deployments": list(deployments),
    }
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


def test_fixture_file_loads_with_python_path_resolved_against_its_folder() -> None:
    deployments = load_deployments(DEPLOYMENTS)
    assert {d.service: d.backend for d in deployments.deployments} == {
        "fixture-resampler": "ray",
        "fixture-loudness": "triton",
        "fixture-sleep-ray": "ray",
        "fixture-sleep-triton": "triton",
        "fixture-always-fails": "triton",
        "fixture-always-fails-ray": "ray",
    }
    assert deployments.python_path == [str(FIXTURES), str(FIXTURES / "proto")]
    assert deployments.get("fixture-sleep-triton").max_batch_size == 16


def test_get_unknown_service_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="fixture-resampler"):
        load_deployments(DEPLOYMENTS).get("nope")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"backend": "onnx"}, "backend"),
        ({"service": "Bad_Name"}, "service"),
        ({"max_batch_size": 0}, "max_batch_size"),
    ],
)
def test_invalid_spec_is_rejected_with_the_field(tmp_path: Path, change: dict, reason: str) -> None:
    path = write_deployments(tmp_path, {**SLEEPER, **change})
    with pytest.raises(DeploymentError, match=reason) as info:
        load_deployments(path)
    assert str(path) in str(info.value)


def test_duplicate_services_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="repeated: sleepy"):
        load_deployments(write_deployments(tmp_path, SLEEPER, {**SLEEPER, "backend": "triton"}))


def test_missing_file_is_a_deployment_error(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="missing.yaml"):
        load_deployments(tmp_path / "missing.yaml")


def build(tmp_path: Path, **change: str):
    deployments = load_deployments(write_deployments(tmp_path, {**SLEEPER, **change}))
    return build_predictor(
        deployments.deployments[0],
        python_path=deployments.python_path,
        proto_modules=deployments.proto_modules,
    )


def test_build_predictor_imports_loads_and_predicts(tmp_path: Path) -> None:
    predictor = build(tmp_path)
    request = predictor.request_type(seconds=0, tag="t")
    predictor.check(request)
    assert [r.tag for r in predictor.predict([request, request])] == ["t", "t"]
    assert str(FIXTURES) in sys.path


def test_mismatched_request_type_names_both_types(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match=r"fixtures.v1.LoudnessRequest.*fixtures.v1.SleepRequest"):
        build(tmp_path, request_type="orate.fixtures.v1.LoudnessRequest")


def test_mismatched_response_type_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="response_type"):
        build(tmp_path, response_type="orate.fixtures.v1.FailResponse")


@pytest.mark.parametrize(
    ("predictor", "reason"),
    [
        ("fixture_predictors.Sleeper", "module:Class"),
        ("no_such_module:Sleeper", "cannot import"),
        ("fixture_predictors:NoSuchClass", "cannot import"),
        ("fixture_predictors:decode_wav", "not a shared.serving.Predictor"),
    ],
)
def test_bad_predictor_path_is_a_clear_error(tmp_path: Path, predictor: str, reason: str) -> None:
    with pytest.raises(DeploymentError, match=reason):
        build(tmp_path, predictor=predictor)


def test_triton_repository_has_one_batched_python_model_per_triton_deployment(tmp_path: Path) -> None:
    pytest.importorskip("pytriton")
    from tritonclient.grpc import model_config_pb2 as mc

    from shared.serving.triton import build_model_repository, triton_command

    repo = build_model_repository(DEPLOYMENTS, tmp_path)
    assert sorted(p.name for p in repo.iterdir()) == [
        "fixture-always-fails",
        "fixture-loudness",
        "fixture-sleep-triton",
    ]
    config = text_format.Parse((repo / "fixture-sleep-triton" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert config.backend == "python"
    assert config.max_batch_size == 16
    assert config.dynamic_batching.max_queue_delay_microseconds == 20_000
    assert [(g.count, g.kind) for g in config.instance_group] == [(1, mc.ModelInstanceGroup.KIND_CPU)]
    assert [(i.name, list(i.dims)) for i in config.input] == [("REQUEST", [1])]
    assert [o.name for o in config.output] == ["RESPONSE", "ERROR"]
    assert config.parameters["predictor"].string_value == "fixture_predictors:Sleeper"
    assert json.loads(config.parameters["python_path"].string_value)[0] == str(FIXTURES)
    model = (repo / "fixture-sleep-triton" / "1" / "model.py").read_text()
    assert "class TritonPythonModel" in model
    assert (tmp_path / "triton" / "backends" / "python" / "triton_python_backend_stub").stat().st_mode & 0o111

    argv, env = triton_command(repo, tmp_path, 20001, 20002, 20003)
    assert Path(argv[0]).name == "tritonserver" and Path(argv[0]).exists()
    assert "--grpc-address=127.0.0.1" in argv and "--grpc-port=20002" in argv
    assert "--http-address=127.0.0.1" in argv and "--metrics-address=127.0.0.1" in argv
    assert str(FIXTURES / "proto") in env["PYTHONPATH"].split(":")
    assert "nvidia_pytriton.libs" in env["LD_LIBRARY_PATH"]


def test_missing_proto_module_is_a_clear_error(tmp_path: Path) -> None:
    deployments = load_deployments(write_deployments(tmp_path, SLEEPER))
    with pytest.raises(DeploymentError, match="cannot import proto modules"):
        build_predictor(deployments.deployments[0], proto_modules=["no_such_pb2"])
