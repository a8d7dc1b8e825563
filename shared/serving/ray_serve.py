"""Ray Serve adapter: one deployment class that hosts any Predictor behind POST /<service>/predict (and a
streaming one behind POST /<service>/predict_stream too)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from google.protobuf.message import DecodeError, Message
from ray import serve
from ray.serve.deployment import Application
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shared.serving import stream_frames
from shared.serving.deployments import DeploymentsFile, DeploymentSpec, build_predictor
from shared.serving.predictor import InvalidRequest, StreamingPredictor, StreamPart, stream_parts

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
        # build_predictor has checked that a spec with a chunk type has a StreamingPredictor.
        self.streams = bool(spec.chunk_type)
        # The batch size and wait come from the spec, which is only known here, not at class definition.
        self.predict_batch.set_max_batch_size(spec.max_batch_size)
        self.predict_batch.set_batch_wait_timeout_s(spec.batch_wait_ms / 1000)

    async def __call__(self, http: Request) -> Response:
        path = http.url.path.rstrip("/")
        if http.method == "POST" and path.endswith("/predict_stream") and self.streams:
            return await self._stream_over_http(http)
        if http.method != "POST" or not path.endswith("/predict"):
            where = "POST <service>/predict" + (" or <service>/predict_stream" if self.streams else "")
            return JSONResponse({"error": f"not found: use {where}"}, status_code=404)
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

    async def predict_stream(self, body: bytes) -> AsyncIterator[tuple[bool, bytes]]:
        """The streaming call for DeploymentHandle callers (`.options(stream=True)`): (final, serialized
        message) per part as the predictor yields it, the chunks first and the response last;
        InvalidRequest as for predict()."""
        request = self._decode(body)
        self.predictor.check(request)
        async for part in self._stream(request):
            yield part.final, part.message.SerializeToString()

    async def _stream_over_http(self, http: Request) -> Response:
        """Bad input answers 400 or 422 before the stream starts; the stream is frames (stream_frames)."""
        try:
            request = self._decode(await http.body())
        except InvalidRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            self.predictor.check(request)
        except InvalidRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return StreamingResponse(self._frames(request), media_type=stream_frames.MEDIA_TYPE)

    async def _frames(self, request: Message) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream(request):
                kind = stream_frames.RESPONSE if part.final else stream_frames.CHUNK
                yield stream_frames.encode_frame(kind, part.message.SerializeToString())
        except InvalidRequest as exc:
            yield stream_frames.encode_frame(stream_frames.INVALID, str(exc).encode())
        except Exception as exc:
            logger.exception("stream failed")
            yield stream_frames.encode_frame(stream_frames.ERROR, f"{type(exc).__name__}: {exc}".encode())

    async def _stream(self, request: Message) -> AsyncIterator[StreamPart]:
        if not self.streams:
            raise InvalidRequest("this deployment does not stream: its spec names no chunk_type")
        assert isinstance(self.predictor, StreamingPredictor)
        parts = stream_parts(self.predictor, request)
        # Each part is computed in a worker thread, as predict_batch does, and passed on as soon as it is.
        while (part := await asyncio.to_thread(next, parts, None)) is not None:
            yield part

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
