"""Deployment specs: which predictor serves which service, on which backend, with what batching."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from shared.protos import import_proto_modules
from shared.serving.predictor import Predictor, StreamingPredictor


class DeploymentError(ValueError):
    """A deployments file or spec that cannot be served, with the reason."""


class Autoscaling(BaseModel):
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(2.0, gt=0)


class DeploymentSpec(BaseModel):
    service: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    backend: Literal["ray", "triton"]
    predictor: str = Field(description="import path module:Class of a shared.serving.Predictor")
    request_type: str = Field(description="full protobuf name, e.g. orate.v1.FaceVqvaeRequest")
    response_type: str
    chunk_type: str = Field(
        "",
        description="full protobuf name of the chunks of a shared.serving.StreamingPredictor; set, the "
        "deployment streams them before the response (empty: one response per request)",
    )
    predictor_config: dict[str, Any] = {}
    max_batch_size: int = Field(8, ge=1)
    batch_wait_ms: float = Field(2.0, ge=0)
    instances: int = Field(1, ge=1, description="Triton instance_group count")
    autoscaling: Autoscaling = Autoscaling()


class DeploymentsFile(BaseModel):
    deployments: list[DeploymentSpec]
    proto_modules: list[str] = Field(
        default_factory=list, description="extra *_pb2 modules to import (message types beyond orate.v1)"
    )
    python_path: list[str] = Field(default_factory=list, description="extra import roots for predictors")

    @model_validator(mode="after")
    def _unique_services(self) -> DeploymentsFile:
        names = [d.service for d in self.deployments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"service names must be unique, repeated: {', '.join(duplicates)}")
        return self

    def get(self, service: str) -> DeploymentSpec:
        for spec in self.deployments:
            if spec.service == service:
                return spec
        known = ", ".join(d.service for d in self.deployments) or "none"
        raise KeyError(f"no deployment for service {service!r} (known: {known})")


def load_deployments(path: Path) -> DeploymentsFile:
    """Parse and validate a deployments YAML file; relative python_path entries resolve against its folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        parsed = DeploymentsFile.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise DeploymentError(f"invalid deployments file {path}: {exc}") from exc
    base = path.resolve().parent
    parsed.python_path = [str((base / entry).resolve()) for entry in parsed.python_path]
    return parsed


def build_predictor(
    spec: DeploymentSpec, *, python_path: Sequence[str] = (), proto_modules: Sequence[str] = ()
) -> Predictor:
    """Import the spec's predictor class, check its message types against the spec, construct and load it."""
    for entry in reversed(python_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        import_proto_modules(tuple(proto_modules))
    except ImportError as exc:
        raise DeploymentError(f"{spec.service}: cannot import proto modules: {exc}") from exc
    module_name, _, class_name = spec.predictor.partition(":")
    if not module_name or not class_name:
        raise DeploymentError(f"{spec.service}: predictor must be 'module:Class', got {spec.predictor!r}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise DeploymentError(f"{spec.service}: cannot import predictor {spec.predictor!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Predictor)):
        raise DeploymentError(f"{spec.service}: {spec.predictor} is not a shared.serving.Predictor")
    for role, expected in (("request", spec.request_type), ("response", spec.response_type)):
        actual = getattr(cls, f"{role}_type").DESCRIPTOR.full_name
        if actual != expected:
            raise DeploymentError(
                f"{spec.service}: spec says {role}_type {expected!r} but {spec.predictor} uses {actual!r}"
            )
    if spec.chunk_type:
        _check_streaming(spec, cls)
    predictor = cls(**spec.predictor_config)
    predictor.load()
    return predictor


def _check_streaming(spec: DeploymentSpec, cls: type[Predictor]) -> None:
    """A streaming deployment's predictor streams chunks of the spec's type, told apart from its response."""
    if not issubclass(cls, StreamingPredictor):
        raise DeploymentError(
            f"{spec.service}: spec names chunk_type {spec.chunk_type!r} but {spec.predictor} is not a "
            "shared.serving.StreamingPredictor"
        )
    actual = cls.chunk_type.DESCRIPTOR.full_name
    if actual != spec.chunk_type:
        raise DeploymentError(
            f"{spec.service}: spec says chunk_type {spec.chunk_type!r} but {spec.predictor} uses {actual!r}"
        )
    if cls.chunk_type is cls.response_type:
        raise DeploymentError(f"{spec.service}: {spec.predictor}'s chunk and response types must differ")
