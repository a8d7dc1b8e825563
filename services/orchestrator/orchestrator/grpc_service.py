"""gRPC JobService: the same job service as REST, with its errors mapped to gRPC status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import grpc
from fastapi.concurrency import run_in_threadpool
from orate.v1 import jobs_pb2, jobs_pb2_grpc

from orchestrator import codec, metrics
from orchestrator.errors import JobServiceError
from orchestrator.jobs import JobService
from orchestrator.settings import ApiSettings
from shared import events

T = TypeVar("T")

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


class JobServiceServicer(jobs_pb2_grpc.JobServiceServicer):
    """Runs on the API's event loop (grpc.aio): unary calls run the blocking job service in the shared
    thread pool, event streams wait on the loop and hold no thread. Media inputs travel as json Values
    {"base64": ..., "media_type": ...}, as in the REST JSON body."""

    def __init__(self, service: JobService) -> None:
        self._service = service

    async def SubmitJob(
        self, request: jobs_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        inputs = {name: codec.from_value(value) for name, value in request.inputs.items()}
        job, created = await _call(
            context, self._service.submit, request.pipeline, inputs, request.idempotency_key
        )
        if created:
            metrics.JOBS_SUBMITTED.labels(job.pipeline).inc()
        return job

    async def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        return await _call(context, self._service.get, request.job_id)

    async def CancelJob(
        self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        return await _call(
            context, self._service.cancel, request.job_id, request.reason or "cancelled through gRPC"
        )

    async def StreamJobEvents(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.JobEvent]:
        followed = await _call(context, self._service.follow_events, request.job_id)
        # Headers now, not with the first event: a client can tell that its stream is open.
        await context.send_initial_metadata(())
        async for raw in followed:
            yield events.to_job_event(raw)

    async def ListPipelines(
        self, request: jobs_pb2.ListPipelinesRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListPipelinesResponse:
        return jobs_pb2.ListPipelinesResponse(pipelines=[p.to_proto() for p in self._service.pipelines()])


async def _call(context: grpc.aio.ServicerContext, fn: Callable[..., T], *args: object) -> T:
    try:
        return await run_in_threadpool(fn, *args)
    except JobServiceError as exc:
        await context.abort(STATUS_CODES.get(exc.status, grpc.StatusCode.INTERNAL), exc.message)
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
