"""The job API (`python -m orchestrator.api`): REST v1 with an OpenAPI document, and gRPC JobService."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any, Literal, get_args

import anyio
import redis
import uvicorn
from fastapi import Depends, FastAPI, Header, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from orate.v1 import jobs_pb2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from orchestrator.direct import DirectModels, ModelView
from orchestrator.errors import (
    JobServiceError,
    MalformedRequest,
    NotFound,
    StoreUnavailable,
    UnsupportedMediaType,
)
from orchestrator.grpc_service import serve_grpc
from orchestrator.inputs import MediaUpload
from orchestrator.jobs import API_KEY_HEADER, DEFAULT_PAGE, MAX_PAGE, JobService
from orchestrator.middleware import BodySizeLimit, RequestMetrics, error_json
from orchestrator.pipelines import MEDIA_TYPES, Pipeline, load_pipelines
from orchestrator.process import configure_logging, freeze_heap, read_deployments
from orchestrator.settings import ApiSettings, OrchestratorSettings
from orchestrator.views import (
    JOB_EVENT_ITEM_SCHEMA,
    ErrorBody,
    JobListView,
    JobView,
    PipelineView,
    ReadyView,
    SubmitRequest,
    job_url,
    job_view,
    pipeline_view,
    submit_request_schema,
)
from shared import events
from shared.artifacts import ArtifactNotFound, artifact_store
from shared.bus import BusError, Producer, Topics, ensure_topics
from shared.settings import KafkaSettings
from shared.store import MAX_CREATED_UNIX_MS, JobQuery, JobStore
from shared.tenants import Tenants

log = logging.getLogger(__name__)

RETRY_AFTER_HEADER = {
    "Retry-After": {
        "required": True,
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}
WWW_AUTHENTICATE_HEADER = {
    "WWW-Authenticate": {
        "required": True,
        "description": 'the challenge: `Bearer realm="orate"`, plus `error="invalid_token"` when a key '
        "was sent",
        "schema": {"type": "string"},
    }
}
ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: {"description": "malformed request: not JSON, not the expected shape, or a bad multipart form"},
    401: {
        "description": "no API key (where one is required), or one that is not valid: unknown, revoked or "
        "malformed",
        "headers": WWW_AUTHENTICATE_HEADER,
    },
    404: {"description": "no such pipeline, job, artifact or model"},
    409: {
        "description": "a submit with the same Idempotency-Key is still in progress",
        "headers": RETRY_AFTER_HEADER,
    },
    413: {"description": "the request body is larger than the API takes"},
    415: {"description": "the body is neither application/json nor multipart/form-data"},
    422: {"description": "invalid input or parameter; every problem is named"},
    429: {
        "description": "the tenant is over a quota: concurrent jobs, submits per minute or bytes per day",
        "headers": RETRY_AFTER_HEADER,
    },
    503: {
        "description": "the broker, Redis or the model service is unavailable",
        "headers": RETRY_AFTER_HEADER,
    },
    504: {"description": "the model did not answer in time"},
}
JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# A name that is no JobStatus fails here, at import.
JOB_STATUS_NAMES = {
    name: jobs_pb2.JobStatus.Value(f"JOB_STATUS_{name.upper()}") for name in get_args(JobStatusName)
}
# Multipart clients that name no type send this; it tells us nothing, so probing decides.
GENERIC_MEDIA_TYPE = "application/octet-stream"
NON_FINITE_NUMBER = "numbers must be finite (no NaN, Infinity or out-of-range values)"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ErrorBody responses an operation can answer, as FastAPI's `responses`."""
    return {status: {"model": ErrorBody, **ERROR_RESPONSES[status]} for status in statuses}


def _submit_body(pipelines: list[Pipeline]) -> dict[str, Any]:
    media_inputs = sorted(
        {name for pipeline in pipelines for name, spec in pipeline.inputs.items() if spec.type in MEDIA_TYPES}
    )
    parts = {
        name: {"type": "string", "format": "binary", "description": "a media input"} for name in media_inputs
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": submit_request_schema(pipelines)},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["request"],
                        "properties": {
                            "request": submit_request_schema(pipelines, media_as_parts=True),
                            **parts,
                        },
                        "additionalProperties": False,
                    },
                    # A form field holding the request as JSON; media inputs as file parts.
                    "encoding": {"request": {"contentType": "application/json"}},
                },
            },
        }
    }


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "description": "the model's request message in protobuf JSON"}
            }
        },
    }
}


class _BearerKey(HTTPBearer):
    """`Authorization: Bearer <API key>` in the OpenAPI document; as a dependency, the raw header, which
    JobService.authenticate parses (HTTPBearer lets a header of another scheme pass as no key at all)."""

    async def __call__(self, request: HTTPConnection) -> str | None:  # type: ignore[override]
        return request.headers.get("authorization")


BEARER_KEY = _BearerKey(
    scheme_name="bearer",
    bearerFormat="ork_<key id>_<secret>",
    description="an API key (`orate keys create`), which names the caller's tenant",
    auto_error=False,
)
HEADER_KEY = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="apiKey",
    description="the same API key in a header of its own (Authorization wins when both are sent)",
    auto_error=False,
)


def caller(
    request: Request,
    authorization: str | None = Security(BEARER_KEY),
    api_key: str | None = Security(HEADER_KEY),
) -> str:
    """The tenant of the caller of every /v1 operation. A sync dependency: a key is looked up in Redis, on
    the thread pool; and before the body is read, so an unauthenticated upload is not."""
    return request.app.state.service.authenticate(authorization, api_key)


Tenant = Annotated[str, Depends(caller)]
AUTHENTICATED = [Depends(caller)]


def create_app(
    service: JobService,
    settings: ApiSettings,
    ready_checks: Mapping[str, Callable[[], bool]],
    models: DirectModels | None = None,
) -> FastAPI:
    # No trailing-slash redirects: a path that is not in the OpenAPI document is a 404.
    app = FastAPI(
        title="Orate job API",
        version="1",
        description="Submit and follow digital-human pipelines.",
        redirect_slashes=False,
    )

    @app.exception_handler(JobServiceError)
    async def _service_error(_: Request, exc: JobServiceError) -> Response:
        return _error_response(exc)

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    async def _store_error(_: Request, exc: redis.RedisError) -> Response:
        log.warning("job store unavailable: %s", exc)
        return _error_response(StoreUnavailable(f"the job store cannot be reached: {exc}"))

    @app.exception_handler(ArtifactNotFound)
    async def _artifact_gone(_: Request, exc: ArtifactNotFound) -> Response:
        return _error_response(NotFound(f"the artifact is no longer stored: {exc}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Starlette's own: an unparsable multipart form (400), no route (404), no such method (405).
        code = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        headers = exc.headers
        matched = request.scope.get("route")
        if exc.status_code == 405 and matched is not None:
            # Starlette's Allow names the methods of the first route that matched the path; GET and POST
            # /v1/jobs are two routes with one template, and Allow must name both.
            methods = {
                method
                for route in app.routes
                if getattr(route, "path", None) == matched.path
                for method in getattr(route, "methods", None) or ()
            }
            headers = {"Allow": ", ".join(sorted(methods))}
        return JSONResponse(
            {"error": {"code": code, "message": str(exc.detail)}}, exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": {"code": "invalid_request", "message": problems}}, 422)

    @app.exception_handler(Exception)
    async def _internal_error(_: Request, exc: Exception) -> Response:
        return _error_response(JobServiceError("internal error; the API's log has the details"))

    app.state.service = service

    @app.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobView,
        responses={
            202: {
                "headers": {
                    "Location": {
                        "required": True,
                        "description": "the job's URL",
                        "schema": {"type": "string"},
                    }
                }
            },
            **_errors(400, 401, 404, 409, 413, 415, 422, 429, 503),
        },
        openapi_extra=_submit_body(service.pipelines()),
        summary="Submit a job (JSON, or multipart with a `request` part and one file part per media input)",
    )
    async def submit_job(
        request: Request,
        tenant: Tenant,
        idempotency_key: str | None = Header(
            None,
            alias="Idempotency-Key",
            max_length=255,
            description="the same key returns the same job (for 24 hours; keys are per tenant)",
        ),
    ) -> Response:
        submit, inputs = await _read_submit(request, settings.max_body_bytes)
        job, _ = await run_in_threadpool(
            service.submit, tenant, submit.pipeline, inputs, idempotency_key or ""
        )
        body = job_view(job).model_dump_json()
        return Response(body, 202, media_type="application/json", headers={"Location": job_url(job.job_id)})

    @app.get(
        "/v1/jobs",
        response_model=JobListView,
        responses=_errors(401, 422, 503),
        summary="The caller's jobs, newest first (creation time, then job id), a page at a time",
    )
    def list_jobs(
        tenant: Tenant,
        status: Annotated[
            list[JobStatusName] | None,
            Query(description="only jobs in one of these states (repeat the parameter for several)"),
        ] = None,
        pipeline: str | None = Query(None, max_length=255, description="only this pipeline's jobs"),
        created_after: int | None = Query(
            None, ge=0, le=MAX_CREATED_UNIX_MS, description="only jobs created at or after this unix ms"
        ),
        created_before: int | None = Query(
            None, ge=0, le=MAX_CREATED_UNIX_MS, description="only jobs created before this unix ms"
        ),
        limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="at most this many jobs"),
        cursor: str | None = Query(
            None,
            max_length=1024,
            description="the previous page's next_cursor (with the same filters): the jobs after it",
        ),
    ) -> JobListView:
        query = JobQuery(
            statuses=frozenset(JOB_STATUS_NAMES[name] for name in status or ()),
            pipeline=pipeline or "",
            created_after_unix_ms=created_after,
            created_before_unix_ms=created_before,
            limit=limit,
            cursor=cursor or "",
        )
        jobs, next_cursor = service.list_jobs(tenant, query)
        return JobListView(jobs=[job_view(job) for job in jobs], next_cursor=next_cursor or None)

    # Before GET /v1/jobs/{job_id}, whose template matches `<id>:cancel` as well: a 405 names the methods of
    # the first route that matches, and the cancel URL's are POST.
    @app.post(
        "/v1/jobs/{job_id}:cancel",
        status_code=202,
        response_model=JobView,
        responses=_errors(401, 404, 413, 503),
        summary="Ask the engine to cancel the job; answers with the job as it stands",
    )
    @app.post(
        "/v1/jobs/{job_id}/cancel",
        status_code=202,
        response_model=JobView,
        responses=_errors(401, 404, 413, 503),
        summary="The same as POST /v1/jobs/{job_id}:cancel",
        operation_id="cancel_job_alias",
    )
    def cancel_job(job_id: str, tenant: Tenant) -> JobView:
        return job_view(service.cancel(job_id, tenant, "cancelled through the API"))

    @app.get("/v1/jobs/{job_id}", response_model=JobView, responses=_errors(401, 404, 503))
    def get_job(job_id: str, tenant: Tenant) -> JobView:
        return job_view(service.get(job_id, tenant))

    # response_class without a media type: the responses below describe every body (FastAPI would
    # otherwise add its own schema for the stream, and give the errors the stream's media type).
    @app.get(
        "/v1/jobs/{job_id}/events",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "the events as they come, until the terminal one or a long silence",
                "content": {"text/event-stream": {"itemSchema": JOB_EVENT_ITEM_SCHEMA}},
            },
            **_errors(401, 404, 503),
        },
        summary="Server-sent events: the job's history, then live events until its terminal event",
    )
    async def job_events(job_id: str, tenant: Tenant) -> StreamingResponse:
        cloudevents = await run_in_threadpool(service.follow_events, job_id, tenant)
        return StreamingResponse(_sse(cloudevents), media_type="text/event-stream")

    @app.get(
        "/v1/jobs/{job_id}/artifacts/{stage}/{path:path}",
        response_class=Response,  # no media type of its own, as for the events
        responses={
            200: {
                "description": "the artifact's bytes, with its media type",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            **_errors(401, 404, 503),
        },
        summary="An input (stage `_inputs`), stage output or streamed chunk "
        "(`chunks/<attempt>/<sequence>/<field>`, as its orate.stage.chunk event names it) artifact, with its "
        "media type",
    )
    def get_artifact(job_id: str, stage: str, path: str, tenant: Tenant) -> Response:
        data, media_type = service.artifact(job_id, tenant, stage, path)
        return Response(data, media_type=media_type or GENERIC_MEDIA_TYPE)

    @app.get(
        "/v1/pipelines",
        response_model=list[PipelineView],
        responses=_errors(401, 503),
        dependencies=AUTHENTICATED,
    )
    def list_pipelines() -> list[PipelineView]:
        return [pipeline_view(pipeline) for pipeline in service.pipelines()]

    if models is not None:
        direct_calls = anyio.CapacityLimiter(settings.direct_calls_in_flight)

        @app.get(
            "/v1/models",
            response_model=list[ModelView],
            responses=_errors(401, 503),
            dependencies=AUTHENTICATED,
        )
        def list_models() -> list[ModelView]:
            return models.views()

        @app.post(
            "/v1/models/{model}:predict",
            response_model=dict[str, Any],
            responses=_errors(400, 401, 404, 413, 422, 503, 504),
            dependencies=AUTHENTICATED,
            openapi_extra=PREDICT_BODY,
            summary="Call one model service directly: its request message in protobuf JSON (bytes as "
            "base64) in, its response message out",
        )
        async def predict(
            model: str,
            request: Request,
            timeout_s: float = Query(
                60.0, gt=0, le=600, allow_inf_nan=False, description="how long to wait for the model"
            ),
        ) -> JSONResponse:
            body = _load_json(await request.body())
            answer = await anyio.to_thread.run_sync(
                models.predict, model, body, timeout_s, limiter=direct_calls
            )
            return JSONResponse(answer)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=ReadyView,
        responses={503: {"model": ReadyView, "description": "a dependency is unreachable"}},
    )
    def readyz() -> Response:
        checks = {name: _safe_check(check) for name, check in ready_checks.items()}
        ready = all(checks.values())
        return JSONResponse(ReadyView(ready=ready, checks=checks).model_dump(), 200 if ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text format)")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics)  # outermost, so rejected oversized bodies are counted too
    app.openapi = _document_fixes(app.openapi, key_optional=settings.auth == "open")
    return app


def _document_fixes(
    generate: Callable[[], dict[str, Any]], key_optional: bool
) -> Callable[[], dict[str, Any]]:
    """FastAPI documents a 422 HTTPValidationError for every operation with parameters; ours answer 422
    (as an ErrorBody, declared) only where a parameter can be invalid, so the implicit ones go. In open
    mode a key is optional: each authenticated operation's security gains the empty requirement."""
    implicit = {"$ref": "#/components/schemas/HTTPValidationError"}

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI's cached document: every change here must be idempotent
        for path_item in document["paths"].values():
            for operation in path_item.values():
                responses = operation["responses"]
                if (
                    responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema")
                    == implicit
                ):
                    del responses["422"]
                security = operation.get("security")
                if key_optional and security is not None and {} not in security:
                    security.append({})
        for name in ("HTTPValidationError", "ValidationError"):
            document.get("components", {}).get("schemas", {}).pop(name, None)
        return document

    return openapi


def _error_response(error: JobServiceError) -> Response:
    return Response(error_json(error), error.status, headers=error.headers(), media_type="application/json")


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
        submit = _parse_envelope(envelope)
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


def _parse_envelope(body: str | bytes) -> SubmitRequest:
    try:
        return SubmitRequest.model_validate(_load_json(body))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise MalformedRequest(f'expected {{"pipeline": str, "inputs": {{...}}}}: {problems}') from exc


def _load_json(body: str | bytes) -> Any:
    """A JSON request body; MalformedRequest unless it is I-JSON: UTF-8, finite numbers, no lone surrogates
    (the job service keeps numbers as doubles and text as UTF-8 protobuf strings)."""
    try:
        value = json.loads(body, parse_constant=_non_finite, parse_float=_finite_float, parse_int=_finite_int)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedRequest(f"malformed JSON: {exc}") from exc
    if _has_lone_surrogate(value):
        raise MalformedRequest("malformed JSON: a string holds a lone UTF-16 surrogate")
    return value


def _non_finite(literal: str) -> float:
    raise ValueError(f"{literal}: {NON_FINITE_NUMBER}")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"{literal[:20]}: {NON_FINITE_NUMBER}")
    return number


def _finite_int(literal: str) -> int:
    number = int(literal)
    try:
        float(number)
    except OverflowError:
        raise ValueError(f"{literal[:20]}...: {NON_FINITE_NUMBER}") from None
    return number


def _has_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


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
    tenants = Tenants(settings.redis, settings.api.quota)
    producer = Producer(settings.kafka, "orate-api")
    service = JobService(
        pipelines, store, producer, artifact_store(settings.artifacts), topics, settings.api, tenants
    )
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
        tenants.close()
        store.close()


async def serve(server: uvicorn.Server, service: JobService, settings: ApiSettings) -> None:
    """REST and gRPC on one event loop, where open event streams wait without holding a thread."""
    grpc_server = await serve_grpc(service, settings)
    log.info(
        "API on http://%s:%d and grpc %s:%d; auth %s",
        settings.host,
        settings.http_port,
        settings.host,
        settings.grpc_port,
        settings.auth if settings.auth == "keys" else "open (requests without a key act as tenant dev)",
    )
    try:
        await server.serve()
    finally:
        await grpc_server.stop(grace=5)


if __name__ == "__main__":
    main()
