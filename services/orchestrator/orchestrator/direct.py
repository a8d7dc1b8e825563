"""Direct model calls for platform teams: one request to one deployment, without a pipeline or Kafka.

The body is the service's request message in protobuf JSON (bytes fields base64), and so is the answer.
"""

from __future__ import annotations

import threading
from typing import Any

from google.protobuf import json_format
from pydantic import BaseModel

from orchestrator.errors import InvalidInput, ModelTimeout, ModelUnavailableError, NotFound
from shared.protos import message_class
from shared.serving.clients import ModelClient, ModelUnavailable, model_client
from shared.serving.deployments import DeploymentsFile, DeploymentSpec
from shared.serving.predictor import InvalidRequest
from shared.settings import ModelEndpoints


class ModelView(BaseModel):
    service: str
    backend: str
    request_type: str
    response_type: str
    max_batch_size: int


class DirectModels:
    def __init__(self, deployments: DeploymentsFile, endpoints: ModelEndpoints) -> None:
        self._deployments = deployments
        self._endpoints = endpoints
        self._specs = {spec.service: spec for spec in deployments.deployments}
        self._clients: dict[str, ModelClient] = {}
        self._lock = threading.Lock()

    def views(self) -> list[ModelView]:
        return [
            ModelView(
                service=spec.service,
                backend=spec.backend,
                request_type=spec.request_type,
                response_type=spec.response_type,
                max_batch_size=spec.max_batch_size,
            )
            for spec in sorted(self._specs.values(), key=lambda spec: spec.service)
        ]

    def predict(self, service: str, body: Any, timeout_s: float) -> dict[str, Any]:
        spec = self._specs.get(service)
        if spec is None:
            raise NotFound(f"no model service {service!r} (deployed: {', '.join(sorted(self._specs))})")
        request_class = message_class(spec.request_type, self._deployments.proto_modules)
        if not isinstance(body, dict):
            raise InvalidInput(f"the body must be a JSON object: a {spec.request_type} in protobuf JSON")
        try:
            request = json_format.ParseDict(body, request_class())
        except json_format.ParseError as exc:
            raise InvalidInput(f"the body is not a {spec.request_type}: {exc}") from exc
        try:
            raw = self._client(spec).predict(request.SerializeToString(), timeout_s)
        except InvalidRequest as exc:
            raise InvalidInput(f"{service}: {exc}") from exc
        except TimeoutError as exc:
            raise ModelTimeout(f"{service} did not answer within {timeout_s:g} s") from exc
        except ModelUnavailable as exc:
            raise ModelUnavailableError(f"{service}: {exc}") from exc
        response = message_class(spec.response_type, self._deployments.proto_modules).FromString(raw)
        return json_format.MessageToDict(response, preserving_proto_field_name=True)

    def _client(self, spec: DeploymentSpec) -> ModelClient:
        with self._lock:
            if spec.service not in self._clients:
                self._clients[spec.service] = model_client(spec, self._endpoints)
            return self._clients[spec.service]

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
