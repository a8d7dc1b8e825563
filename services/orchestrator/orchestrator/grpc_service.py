"""gRPC JobService: the same job service as REST, with its errors mapped to gRPC status codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from typing import TypeVar

import grpc
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
    """Media inputs travel as json Values {"base64": ..., "media_type": ...}, as in the REST JSON body."""

    def __init__(self, service: JobService) -> None:
        self._service = service

    def SubmitJob(self, request: jobs_pb2.SubmitJobRequest, context: grpc.ServicerContext) -> jobs_pb2.Job:
        inputs = {name: codec.from_value(value) for name, value in request.inputs.items()}
        job, created = _call(context, self._service.submit, request.pipeline, inputs, request.idempotency_key)
        if created:
            metrics.JOBS_SUBMITTED.labels(job.pipeline).inc()
        return job

    def GetJob(self, request: jobs_pb2.GetJobRequest, context: grpc.ServicerContext) -> jobs_pb2.Job:
        return _call(context, self._service.get, request.job_id)

    def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: grpc.ServicerContext) -> jobs_pb2.Job:
        return _call(
            context, self._service.cancel, request.job_id, request.reason or "cancelled through gRPC"
        )

    def StreamJobEvents(
        self, request: jobs_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> Iterator[jobs_pb2.JobEvent]:
        for raw in _call(context, self._service.follow_events, request.job_id):
            yield events.to_job_event(raw)

    def ListPipelines(
        self, request: jobs_pb2.ListPipelinesRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.ListPipelinesResponse:
        return jobs_pb2.ListPipelinesResponse(pipelines=[p.to_proto() for p in self._service.pipelines()])


def _call(context: grpc.ServicerContext, fn: Callable[..., T], *args: object) -> T:
    try:
        return fn(*args)
    except JobServiceError as exc:
        context.abort(STATUS_CODES.get(exc.status, grpc.StatusCode.INTERNAL), exc.message)
        raise  # abort() raises; this line only tells type checkers so


def serve_grpc(service: JobService, settings: ApiSettings, workers: int = 32) -> grpc.Server:
    """Start the gRPC server on settings.grpc_port (messages up to the REST body limit)."""
    options = [
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        ("grpc.max_send_message_length", settings.max_body_bytes),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(workers, thread_name_prefix="grpc"), options=options)
    jobs_pb2_grpc.add_JobServiceServicer_to_server(JobServiceServicer(service), server)
    server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
    server.start()
    return server
