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

    def headers(self) -> dict[str, str]:
        """HTTP headers of the error response (gRPC sends retry-after as trailing metadata)."""
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}


class MalformedRequest(JobServiceError):
    status, code = 400, "malformed_request"


class Unauthenticated(JobServiceError):
    """No API key where one is required, or one that is not valid (unknown, revoked or malformed)."""

    status, code = 401, "unauthenticated"

    def __init__(self, message: str, invalid_key: bool) -> None:
        super().__init__(message)
        self.invalid_key = invalid_key

    def headers(self) -> dict[str, str]:
        # RFC 6750: the challenge names an error only when credentials were sent.
        error = ', error="invalid_token"' if self.invalid_key else ""
        return {"WWW-Authenticate": f'Bearer realm="orate"{error}'}


class NotFound(JobServiceError):
    """No such job, or another tenant's (the same answer: whether a job exists is not for others)."""

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


class InvalidParameter(JobServiceError):
    status, code = 422, "invalid_request"  # the code of FastAPI's own parameter validation errors


class QuotaExceededError(JobServiceError):
    status, code = 429, "quota_exceeded"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


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
