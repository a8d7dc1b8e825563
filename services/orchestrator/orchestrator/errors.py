"""Errors of the job service that a client can act on, each with its HTTP status and a stable code."""

from __future__ import annotations


class JobServiceError(Exception):
    status = 500
    code = "internal"
    # Seconds a client should wait before retrying (the REST API's Retry-After); None: retrying won't help.
    retry_after_s: int | None = None

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
    retry_after_s = 1  # the first submit is waiting for the broker's ack


class PayloadTooLarge(JobServiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(JobServiceError):
    status, code = 415, "unsupported_media_type"


class InvalidInput(JobServiceError):
    status, code = 422, "invalid_input"


class Unavailable(JobServiceError):
    """A dependency (the broker, Redis, a model service) cannot be reached; the request may be retried."""

    status = 503
    retry_after_s = 5


class BrokerUnavailable(Unavailable):
    code = "broker_unavailable"


class StoreUnavailable(Unavailable):
    code = "store_unavailable"


class ModelUnavailableError(Unavailable):
    code = "model_unavailable"


class ModelTimeout(JobServiceError):
    status, code = 504, "model_timeout"
