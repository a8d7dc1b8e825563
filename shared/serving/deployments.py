"""Deployment specs: which predictor serves which service, on which backend, with what batching."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field


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

    def get(self, service: str) -> DeploymentSpec: ...


def load_deployments(path: Path) -> DeploymentsFile: ...
