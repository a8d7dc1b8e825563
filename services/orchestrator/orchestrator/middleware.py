"""ASGI middleware of the REST API: a request body size limit and request counting."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator import metrics
from orchestrator.errors import JobServiceError, PayloadTooLarge


def error_json(error: JobServiceError) -> bytes:
    return json.dumps({"error": {"code": error.code, "message": error.message}}).encode()


class BodySizeLimit:
    """413 when Content-Length exceeds the limit; a body that turns out longer while it is read raises
    PayloadTooLarge from receive(), which the app's error handler answers (chunked uploads have no length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, limited_receive, send)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is larger than {self.max_bytes} bytes")

    async def _reject(self, send: Send) -> None:
        body = error_json(self._error())
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class RequestMetrics:
    """orate_api_requests_total by route template (not the raw path, which holds job ids)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", "unmatched")
            metrics.API_REQUESTS.labels(label, scope["method"], str(status)).inc()
