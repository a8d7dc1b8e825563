"""The job API (`python -m orchestrator.api`): REST v1 with an OpenAPI document, and gRPC JobService."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator import metrics
from orchestrator.direct import DirectModels, ModelView
from orchestrator.errors import JobServiceError, MalformedRequest, UnsupportedMediaType
from orchestrator.grpc_service import serve_grpc
from orchestrator.inputs import MediaUpload
from orchestrator.jobs import JobService
from orchestrator.middleware import BodySizeLimit, RequestMetrics, error_json
from orchestrator.pipelines import load_pipelines
from orchestrator.process import configure_logging, freeze_heap, read_deployments
from orchestrator.settings import ApiSettings, OrchestratorSettings
from orchestrator.views import (
    ErrorBody,
    JobView,
    PipelineView,
    SubmitRequest,
    job_url,
    job_view,
    pipeline_view,
)
from shared import events
from shared.artifacts import artifact_store
from shared.bus import BusError, Producer, Topics, ensure_topics
from shared.settings import KafkaSettings
from shared.store import JobStore

log = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 404, 409, 413, 415, 422, 503)
}
# Multipart clients that name no type send this; it tells us nothing, so probing decides.
GENERIC_MEDIA_TYPE = "application/octet-stream"
SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SubmitRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["request"],
                    "properties": {"request": {"type": "string", "description": "the SubmitRequest as JSON"}},
                    "additionalProperties": {
                        "type": "string",
                        "format": "binary",
                        "description": "a media input",
                    },
                }
            },
        },
    }
}


def create_app(
    service: JobService,
    settings: ApiSettings,
    ready_checks: Mapping[str, Callable[[], bool]],
    models: DirectModels | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Orate job API", version="1", description="Submit and follow digital-human pipelines."
    )

    @app.exception_handler(JobServiceError)
    async def _service_error(_: Request, exc: JobServiceError) -> Response:
        return Response(error_json(exc), exc.status, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"error": {"code": "invalid_request", "message": str(exc.errors())}}, 422)

    @app.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobView,
        responses=ERROR_RESPONSES,
        openapi_extra=SUBMIT_BODY,
        summary="Submit a job (JSON, or multipart with a `request` part and one file part per media input)",
    )
    async def submit_job(
        request: Request, idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=255)
    ) -> Response:
        submit, inputs = await _read_submit(request, settings.max_body_bytes)
        job, created = await run_in_threadpool(service.submit, submit.pipeline, inputs, idempotency_key or "")
        if created:
            metrics.JOBS_SUBMITTED.labels(job.pipeline).inc()
        body = job_view(job).model_dump_json()
        return Response(body, 202, media_type="application/json", headers={"Location": job_url(job.job_id)})

    @app.get("/v1/jobs/{job_id}", response_model=JobView, responses=ERROR_RESPONSES)
    def get_job(job_id: str) -> JobView:
        return job_view(service.get(job_id))

    @app.get(
        "/v1/jobs/{job_id}/events",
        responses={200: {"content": {"text/event-stream": {}}}, **ERROR_RESPONSES},
        summary="Server-sent events: the job's history, then live events until its terminal event",
    )
    async def job_events(job_id: str) -> StreamingResponse:
        cloudevents = await run_in_threadpool(service.follow_events, job_id)
        return StreamingResponse(_sse(cloudevents), media_type="text/event-stream")

    @app.post("/v1/jobs/{job_id}:cancel", status_code=202, response_model=JobView, responses=ERROR_RESPONSES)
    @app.post("/v1/jobs/{job_id}/cancel", status_code=202, response_model=JobView, include_in_schema=False)
    def cancel_job(job_id: str) -> JobView:
        return job_view(service.cancel(job_id, "cancelled through the API"))

    @app.get(
        "/v1/jobs/{job_id}/artifacts/{stage}/{path:path}",
        responses={200: {"content": {"application/octet-stream": {}}}, **ERROR_RESPONSES},
        summary="An input (stage `_inputs`) or stage output artifact, with its media type",
    )
    def get_artifact(job_id: str, stage: str, path: str) -> Response:
        data, media_type = service.artifact(job_id, stage, path)
        return Response(data, media_type=media_type or GENERIC_MEDIA_TYPE)

    @app.get("/v1/pipelines", response_model=list[PipelineView])
    def list_pipelines() -> list[PipelineView]:
        return [pipeline_view(pipeline) for pipeline in service.pipelines()]

    if models is not None:
        direct_calls = anyio.CapacityLimiter(settings.direct_calls_in_flight)

        @app.get("/v1/models", response_model=list[ModelView])
        def list_models() -> list[ModelView]:
            return models.views()

        @app.post(
            "/v1/models/{model}:predict",
            responses=ERROR_RESPONSES | {504: {"model": ErrorBody}},
            summary="Call one model service directly: its request message in protobuf JSON (bytes as "
            "base64) in, its response message out",
        )
        async def predict(model: str, request: Request, timeout_s: float = 60.0) -> JSONResponse:
            try:
                body = json.loads(await request.body())
            except ValueError as exc:
                raise MalformedRequest(f"the body is not JSON: {exc}") from exc
            answer = await anyio.to_thread.run_sync(
                models.predict, model, body, timeout_s, limiter=direct_calls
            )
            return JSONResponse(answer)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        checks = {name: _safe_check(check) for name, check in ready_checks.items()}
        return JSONResponse(
            {"ready": all(checks.values()), "checks": checks}, 200 if all(checks.values()) else 503
        )

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics)  # outermost, so rejected oversized bodies are counted too
    return app


async def _read_submit(request: Request, max_body_bytes: int) -> tuple[SubmitRequest, dict[str, Any]]:
    """The submit envelope and its inputs, with multipart file parts as MediaUploads."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        submit = _parse_envelope(await request.body())
        return submit, dict(submit.inputs)
    if content_type != "multipart/form-data":
        raise UnsupportedMediaType("send application/json or multipart/form-data")
    async with request.form(max_part_size=max_body_bytes) as form:
        envelope = form.get("request")
        if not isinstance(envelope, str):
            raise MalformedRequest("a multipart submit needs a `request` part holding the JSON request")
        submit = _parse_envelope(envelope.encode())
        inputs = dict(submit.inputs)
        for name, part in form.multi_items():
            if name == "request":
                continue
            if not isinstance(part, UploadFile):
                raise MalformedRequest(
                    f"part {name!r} must be a file (other values go in the `request` part)"
                )
            if name in inputs:
                raise MalformedRequest(f"input {name!r} is given both in `request` and as a file part")
            media_type = part.content_type if part.content_type != GENERIC_MEDIA_TYPE else ""
            inputs[name] = MediaUpload(await part.read(), media_type or "")
    return submit, inputs


def _parse_envelope(body: bytes) -> SubmitRequest:
    try:
        return SubmitRequest.model_validate(json.loads(body))
    except json.JSONDecodeError as exc:
        raise MalformedRequest(f"malformed JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise MalformedRequest(f'expected {{"pipeline": str, "inputs": {{...}}}}: {problems}') from exc


async def _sse(cloudevents: AsyncIterator[bytes]) -> AsyncIterator[str]:
    async for raw in cloudevents:
        event = events.from_cloudevent(raw)
        data = json.dumps(event, separators=(",", ":"))
        yield f"id: {event['id']}\nevent: {event['type']}\ndata: {data}\n\n"


def _safe_check(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception as exc:  # a failing dependency makes us not ready, it must not fail the probe itself
        log.warning("readiness check failed: %s", exc)
        return False


class BrokerProbe:
    """The broker is reachable when the jobs topic can be ensured; the answer is reused for a few seconds
    because it costs an admin round trip."""

    def __init__(self, settings: KafkaSettings, topic: str, ttl_s: float = 5.0) -> None:
        self._settings = settings
        self._topic = topic
        self._ttl_s = ttl_s
        self._checked_at = -ttl_s
        self._ok = False

    def __call__(self) -> bool:
        if time.monotonic() - self._checked_at >= self._ttl_s:
            try:
                ensure_topics(self._settings, [self._topic], timeout_s=2.0)
                self._ok = True
            except BusError as exc:
                log.warning("broker not reachable: %s", exc)
                self._ok = False
            self._checked_at = time.monotonic()
        return self._ok


def main() -> None:
    settings = OrchestratorSettings()
    configure_logging(settings)
    deployments = read_deployments(settings)
    pipelines = load_pipelines(settings.pipeline_dirs, deployments)
    topics = Topics(settings.kafka.topic_prefix)
    ensure_topics(settings.kafka, [topics.jobs])
    store = JobStore(settings.redis)
    producer = Producer(settings.kafka, "orate-api")
    service = JobService(pipelines, store, producer, artifact_store(settings.artifacts), topics, settings.api)
    ready_checks = {"redis": store.ping, "broker": BrokerProbe(settings.kafka, topics.jobs)}
    models = DirectModels(deployments, settings.endpoints)
    app = create_app(service, settings.api, ready_checks, models)
    config = uvicorn.Config(
        app, host=settings.api.host, port=settings.api.http_port, log_level=settings.log_level.lower()
    )
    freeze_heap()
    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(serve(uvicorn.Server(config), service, settings.api))
    finally:
        models.close()
        producer.close()
        store.close()


async def serve(server: uvicorn.Server, service: JobService, settings: ApiSettings) -> None:
    """REST and gRPC on one event loop, where open event streams wait without holding a thread."""
    grpc_server = await serve_grpc(service, settings)
    log.info(
        "API on http://%s:%d and grpc %s:%d",
        settings.host,
        settings.http_port,
        settings.host,
        settings.grpc_port,
    )
    try:
        await server.serve()
    finally:
        await grpc_server.stop(grace=5)


if __name__ == "__main__":
    main()
