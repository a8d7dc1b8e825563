"""Clients the stage runners use to call a deployment: Ray Serve over HTTP, Triton over gRPC.
Both send the serialized request message and return the serialized response message."""

from __future__ import annotations

from abc import ABC, abstractmethod

from shared.serving.deployments import DeploymentSpec
from shared.settings import ModelEndpoints


class ModelUnavailable(RuntimeError):
    """The deployment could not be reached or failed: retryable."""


class ModelClient(ABC):
    @abstractmethod
    def predict(self, request: bytes, timeout_s: float) -> bytes:
        """Raises shared.serving.predictor.InvalidRequest (not retryable), TimeoutError or
        ModelUnavailable (retryable)."""

    def close(self) -> None: ...


def model_client(spec: DeploymentSpec, endpoints: ModelEndpoints) -> ModelClient:
    """The client for the spec's backend."""
