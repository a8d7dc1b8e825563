"""Errors of the job service that a client can act on, each with its HTTP status and a stable code."""

from __future__ import annotations


class JobServiceError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedRequest(JobServiceError):
    status, code = 400, "malformed_request"


class NotFound(JobServiceError):
    status, code = 404, "not_found"


class UnknownPipeline(JobServiceError):
    status, code = 404, "unknown_pipeline"


class SubmitInProgress(JobServiceError):
    status, code = 409, "submit_in_progress"


class PayloadTooLarge(JobServiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(JobServiceError):
    status, code = 415, "unsupported_media_type"


class InvalidInput(JobServiceError):
    status, code = 422, "invalid_input"


class BrokerUnavailable(JobServiceError):
    status, code = 503, "broker_unavailable"


class ModelUnavailableError(JobServiceError):
    status, code = 503, "model_unavailable"


class ModelTimeout(JobServiceError):
    status, code = 504, "model_timeout"
