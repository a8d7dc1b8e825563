"""gRPC JobService: the same job service as REST, with its errors mapped to gRPC status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import grpc
from fastapi.concurrency import run_in_threadpool
from orate.v1 import jobs_pb2, jobs_pb2_grpc

from orchestrator import codec
from orchestrator.errors import JobServiceError
from orchestrator.jobs import API_KEY_HEADER, DEFAULT_PAGE, JobService
from orchestrator.settings import ApiSettings
from shared import events
from shared.store import JobQuery

T = TypeVar("T")

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


class JobServiceServicer(jobs_pb2_grpc.JobServiceServicer):
    """Runs on the API's event loop (grpc.aio): unary calls run the blocking job service in the shared
    thread pool, event streams wait on the loop and hold no thread. Media inputs travel as json Values
    {"base64": ..., "media_type": ...}, as in the REST JSON body. Every call presents its API key as the
    metadata `authorization: Bearer <key>` (or `x-api-key: <key>`), as REST does in its headers."""

    def __init__(self, service: JobService) -> None:
        self._service = service

    async def SubmitJob(
        self, request: jobs_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        tenant = await self._tenant(context)
        inputs = {name: codec.from_value(value) for name, value in request.inputs.items()}
        job, _ = await _call(
            context, self._service.submit, tenant, request.pipeline, inputs, request.idempotency_key
        )
        return job

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        tenant = await self._tenant(context)
        # Proto3 scalars are 0 when unset: 0 means "no bound" and "the default page".
        query = JobQuery(
            statuses=frozenset(request.status),
            pipeline=request.pipeline,
            created_after_unix_ms=request.created_after_unix_ms or None,
            created_before_unix_ms=request.created_before_unix_ms or None,
            limit=request.limit or DEFAULT_PAGE,
            cursor=request.cursor,
        )
        jobs, next_cursor = await _call(context, self._service.list_jobs, tenant, query)
        return jobs_pb2.ListJobsResponse(jobs=jobs, next_cursor=next_cursor)

    async def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        tenant = await self._tenant(context)
        return await _call(context, self._service.get, request.job_id, tenant)

    async def CancelJob(
        self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        tenant = await self._tenant(context)
        reason = request.reason or "cancelled through gRPC"
        return await _call(context, self._service.cancel, request.job_id, tenant, reason)

    async def StreamJobEvents(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.JobEvent]:
        tenant = await self._tenant(context)
        followed = await _call(context, self._service.follow_events, request.job_id, tenant)
        # Headers now, not with the first event: a client can tell that its stream is open.
        await context.send_initial_metadata(())
        async for raw in followed:
            yield events.to_job_event(raw)

    async def ListPipelines(
        self, request: jobs_pb2.ListPipelinesRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListPipelinesResponse:
        await self._tenant(context)
        return jobs_pb2.ListPipelinesResponse(pipelines=[p.to_proto() for p in self._service.pipelines()])

    async def _tenant(self, context: grpc.aio.ServicerContext) -> str:
        """The caller's tenant, from its metadata (keys are lower case in gRPC); aborts UNAUTHENTICATED."""
        metadata = dict(context.invocation_metadata() or ())
        return await _call(
            context,
            self._service.authenticate,
            metadata.get("authorization"),
            metadata.get(API_KEY_HEADER.lower()),
        )


async def _call(context: grpc.aio.ServicerContext, fn: Callable[..., T], *args: object) -> T:
    try:
        return await run_in_threadpool(fn, *args)
    except JobServiceError as exc:
        # Retry-After, as REST sends it, in the trailing metadata (429, 503, 409).
        trailers = (("retry-after", str(exc.retry_after_s)),) if exc.retry_after_s is not None else ()
        await context.abort(
            STATUS_CODES.get(exc.status, grpc.StatusCode.INTERNAL), exc.message, trailing_metadata=trailers
        )
        raise  # abort() raises; this line only tells type checkers so


async def serve_grpc(service: JobService, settings: ApiSettings) -> grpc.aio.Server:
    """Start the gRPC server on settings.grpc_port (messages up to the REST body limit) on the running
    event loop."""
    options = [
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        ("grpc.max_send_message_length", settings.max_body_bytes),
    ]
    server = grpc.aio.server(options=options)
    jobs_pb2_grpc.add_JobServiceServicer_to_server(JobServiceServicer(service), server)
    server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
    await server.start()
    return server
