"""Ray Serve adapter: one deployment class that hosts any Predictor behind POST /<service>/predict."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from google.protobuf.message import DecodeError, Message
from ray import serve
from ray.serve.deployment import Application
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.serving.deployments import DeploymentsFile, DeploymentSpec, build_predictor
from shared.serving.predictor import InvalidRequest

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
# A quarter core per replica lets several deployments share a 2-core machine.
REPLICA_NUM_CPUS = 0.25
# Two batches' worth in flight: one running in predict() while the next one fills up.
IN_FLIGHT_BATCHES = 2
# No line per request: each one is formatted by the replica, tailed by Ray's log monitor and relayed to the
# host's log, which cost as much CPU as the no-op call itself on a 2-core machine. Request counts and
# latencies are Prometheus metrics (the runners' and Serve's own); errors are still logged.
LOGGING = {"enable_access_log": False}


@serve.deployment(ray_actor_options={"num_cpus": REPLICA_NUM_CPUS}, max_constructor_retry_count=2)
class PredictorDeployment:
    """Loads the spec's predictor once per replica; checks each request, predicts in @serve.batch batches."""

    def __init__(
        self, spec: DeploymentSpec, python_path: Sequence[str], proto_modules: Sequence[str]
    ) -> None:
        self.predictor = build_predictor(spec, python_path=python_path, proto_modules=proto_modules)
        self.request_type = type(self.predictor).request_type
        # The batch size and wait come from the spec, which is only known here, not at class definition.
        self.predict_batch.set_max_batch_size(spec.max_batch_size)
        self.predict_batch.set_batch_wait_timeout_s(spec.batch_wait_ms / 1000)

    async def __call__(self, http: Request) -> Response:
        if http.method != "POST" or not http.url.path.rstrip("/").endswith("/predict"):
            return JSONResponse({"error": "not found: use POST <service>/predict"}, status_code=404)
        try:
            request = self._decode(await http.body())
        except InvalidRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            self.predictor.check(request)
            response = await self.predict_batch(request)
        except InvalidRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        except Exception as exc:
            logger.exception("request failed")
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)
        return Response(response.SerializeToString(), media_type=PROTOBUF)

    async def predict(self, body: bytes) -> bytes:
        """The same call for DeploymentHandle callers (the stage runners): serialized request in,
        serialized response out; InvalidRequest for a request the predictor rejects."""
        request = self._decode(body)
        self.predictor.check(request)
        response = await self.predict_batch(request)
        return response.SerializeToString()

    def _decode(self, body: bytes) -> Message:
        try:
            return self.request_type.FromString(body)
        except DecodeError as exc:
            name = self.request_type.DESCRIPTOR.full_name
            raise InvalidRequest(f"body is not a serialized {name}: {exc}") from exc

    @serve.batch
    async def predict_batch(self, batch: list[Message]) -> list[Message]:
        # A worker thread keeps the replica's event loop free to accept and queue the next batch.
        responses = await asyncio.to_thread(self.predictor.predict, batch)
        if len(responses) != len(batch):
            raise RuntimeError(f"predictor returned {len(responses)} responses for {len(batch)} requests")
        return responses


def application(spec: DeploymentSpec, deployments: DeploymentsFile) -> Application:
    """The Serve application for one ray-backend spec (deployment name = service)."""
    return PredictorDeployment.options(
        name=spec.service,
        max_ongoing_requests=IN_FLIGHT_BATCHES * spec.max_batch_size,
        autoscaling_config=spec.autoscaling.model_dump(),
        logging_config=LOGGING,
    ).bind(spec, deployments.python_path, deployments.proto_modules)
