"""Triton adapter, server side: a model repository for the triton deployments and the command to serve it."""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from importlib.util import find_spec
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

import shared
from shared.serving.deployments import DeploymentSpec, load_deployments

MODEL_FILE = Path(__file__).with_name("triton_model.py")
STRING = mc.DataType.TYPE_STRING
BOOL = mc.DataType.TYPE_BOOL


def pytriton_dir() -> Path:
    """Folder of the nvidia-pytriton package, which bundles tritonserver and the Python backend."""
    spec = find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed (pip install 'orate[triton]')")
    return Path(next(iter(spec.submodule_search_locations)))


def model_config(spec: DeploymentSpec, python_path: list[str], proto_modules: list[str]) -> mc.ModelConfig:
    """config.pbtxt of one deployment: the generic Python model, batched, its predictor in parameters. A
    streaming deployment (one with a chunk type) is decoupled: each request gets one response per part of
    its stream, FINAL true on the last."""
    streams = bool(spec.chunk_type)
    parameters = {
        "predictor": spec.predictor,
        "request_type": spec.request_type,
        "response_type": spec.response_type,
        "chunk_type": spec.chunk_type,
        "predictor_config": json.dumps(spec.predictor_config),
        "python_path": json.dumps(python_path),
        "proto_modules": json.dumps(proto_modules),
    }
    return mc.ModelConfig(
        name=spec.service,
        backend="python",
        max_batch_size=spec.max_batch_size,
        dynamic_batching=mc.ModelDynamicBatching(
            max_queue_delay_microseconds=round(spec.batch_wait_ms * 1000)
        ),
        instance_group=[mc.ModelInstanceGroup(count=spec.instances, kind=mc.ModelInstanceGroup.KIND_CPU)],
        input=[mc.ModelInput(name="REQUEST", data_type=STRING, dims=[1])],
        output=[mc.ModelOutput(name=name, data_type=STRING, dims=[1]) for name in ("RESPONSE", "ERROR")]
        + ([mc.ModelOutput(name="FINAL", data_type=BOOL, dims=[1])] if streams else []),
        model_transaction_policy=mc.ModelTransactionPolicy(decoupled=streams),
        parameters={key: mc.ModelParameter(string_value=value) for key, value in parameters.items()},
    )


def build_model_repository(deployments_file: Path, run_dir: Path) -> Path:
    """Write <run_dir>/triton/models (one model per triton deployment) and the Python backend beside it."""
    deployments = load_deployments(deployments_file)
    root = Path(run_dir).resolve() / "triton"
    repo = root / "models"
    # Rebuilt from scratch each time so a removed deployment does not linger in the repository.
    shutil.rmtree(repo, ignore_errors=True)
    for spec in deployments.deployments:
        if spec.backend != "triton":
            continue
        (repo / spec.service / "1").mkdir(parents=True)
        config = model_config(spec, deployments.python_path, deployments.proto_modules)
        (repo / spec.service / "config.pbtxt").write_text(text_format.MessageToString(config))
        shutil.copyfile(MODEL_FILE, repo / spec.service / "1" / "model.py")
    repo.mkdir(parents=True, exist_ok=True)
    server = pytriton_dir() / "tritonserver"
    backend = root / "backends" / "python"
    shutil.copytree(server / "backends" / "python", backend, dirs_exist_ok=True)
    stub = server / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copy2(stub / "triton_python_backend_stub", backend / "triton_python_backend_stub")
    return repo


def triton_command(
    repo: Path, run_dir: Path, http_port: int, grpc_port: int, metrics_port: int
) -> tuple[list[str], dict[str, str]]:
    """argv of the bundled tritonserver and the variables to set over os.environ for it."""
    server = pytriton_dir() / "tritonserver"
    argv = [
        str(server / "bin" / "tritonserver"),
        f"--model-repository={Path(repo).resolve()}",
        f"--backend-directory={Path(run_dir).resolve() / 'triton' / 'backends'}",
        "--model-control-mode=none",
        "--disable-auto-complete-config",
        # Loopback only: Triton's endpoints have no authentication (its default address is 0.0.0.0).
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        # Python-backend shared memory lives in /dev/shm; a per-server prefix keeps two local servers apart.
        f"--backend-config=python,shm-region-prefix-name=orate_triton_{grpc_port}_",
    ]
    python_path = [str(Path(shared.__file__).resolve().parent.parent)]
    for config_file in sorted(Path(repo).glob("*/config.pbtxt")):
        config = text_format.Parse(config_file.read_text(), mc.ModelConfig())
        python_path += [
            p for p in json.loads(config.parameters["python_path"].string_value) if p not in python_path
        ]
    env = {
        # The stub links the system libpython but must load this interpreter's (same minor, other patch
        # release: a mismatch breaks the stdlib); the copied stub also loses its RPATH to pytriton's libs.
        "LD_LIBRARY_PATH": prepend(
            [sysconfig.get_config_var("LIBDIR"), str(pytriton_dir().parent / "nvidia_pytriton.libs")],
            "LD_LIBRARY_PATH",
        ),
        # The stub finds its interpreter (and so this venv's site-packages) through PATH.
        "PATH": prepend([str(Path(sys.executable).parent)], "PATH"),
        "PYTHONPATH": prepend(python_path, "PYTHONPATH"),
    }
    return argv, env


def prepend(entries: list[str], variable: str) -> str:
    """entries before the variable's current value, read when the command is built."""
    current = os.environ.get(variable)
    return os.pathsep.join([*entries, current] if current else entries)
