"""Clients the stage runners use to call a deployment: Ray Serve through a DeploymentHandle (or over HTTP
from outside the Ray cluster), Triton over gRPC. All send the serialized request message and return the
serialized response message (or, from a streaming deployment, its serialized parts as they come)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Generator
from typing import TYPE_CHECKING

import httpx
import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from shared.serving import stream_frames
from shared.serving.deployments import DeploymentSpec
from shared.serving.predictor import InvalidRequest
from shared.settings import ModelEndpoints

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
# How long a Ray runner waits at start for Serve to run its deployment (the stack's start-up timeout).
_SERVE_WAIT_S = 300.0
# Enough pooled connections for a runner's thread pool to keep a deployment's batches full.
MAX_CONNECTIONS = 64
# One part of a streamed answer: (final, serialized message); final is False for a chunk, True for the
# response that ends the stream.
StreamedPart = tuple[bool, bytes]


class ModelUnavailable(RuntimeError):
    """The deployment could not be reached or failed: retryable."""


class ModelClient(ABC):
    """Thread-safe: one client serves all threads of a runner, so the server sees concurrent requests."""

    @abstractmethod
    def predict(self, request: bytes, timeout_s: float) -> bytes:
        """Raises shared.serving.predictor.InvalidRequest (not retryable), TimeoutError or
        ModelUnavailable (retryable)."""

    def predict_stream(self, request: bytes, timeout_s: float) -> Generator[StreamedPart, None, None]:
        """A streaming deployment's parts as they come: (False, chunk)... then (True, response); timeout_s
        bounds the whole stream. Raises as predict() does, before any part or between two; a caller that
        stops early closes the iterator, which cancels the call."""
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def close(self) -> None:  # noqa: B027 - optional hook: clients without connections need nothing
        """Release pooled connections."""


class RayServeClient(ModelClient):
    """POST the request to {ray_serve_url}/{service}/predict over pooled keep-alive connections."""

    def __init__(self, ray_serve_url: str, service: str) -> None:
        self.url = f"{ray_serve_url.rstrip('/')}/{service}/predict"
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        self._http = httpx.Client(limits=limits, headers={"content-type": PROTOBUF})

    def predict(self, request: bytes, timeout_s: float) -> bytes:
        try:
            response = self._http.post(self.url, content=request, timeout=timeout_s)
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"{self.url} did not answer within {timeout_s} s") from exc
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 200:
            return response.content
        reason = error_reason(response)
        if response.status_code == 422:
            raise InvalidRequest(reason)
        raise ModelUnavailable(f"{self.url} answered {response.status_code}: {reason}")

    def predict_stream(self, request: bytes, timeout_s: float) -> Generator[StreamedPart, None, None]:
        """POST to {service}/predict_stream: bad input answers 422 before the stream, which is frames
        (shared.serving.stream_frames); a failure mid-stream is its last frame."""
        url = f"{self.url}_stream"
        deadline = time.monotonic() + timeout_s
        try:
            with self._http.stream("POST", url, content=request, timeout=timeout_s) as response:
                if response.status_code != 200:
                    response.read()
                    reason = error_reason(response)
                    if response.status_code == 422:
                        raise InvalidRequest(reason)
                    raise ModelUnavailable(f"{url} answered {response.status_code}: {reason}")
                for kind, payload in stream_frames.read_frames(response.iter_bytes()):
                    if kind == stream_frames.INVALID:
                        raise InvalidRequest(payload.decode())
                    if kind == stream_frames.ERROR:
                        raise ModelUnavailable(f"{url}: {payload.decode()}")
                    yield kind == stream_frames.RESPONSE, payload
                    if kind == stream_frames.RESPONSE:
                        return
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{url} did not finish its stream within {timeout_s} s")
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"{url} did not finish its stream within {timeout_s} s") from exc
        except (httpx.HTTPError, stream_frames.FrameError) as exc:
            raise ModelUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
        raise ModelUnavailable(f"{url}: the stream ended without its response")

    def close(self) -> None:
        self._http.close()


class RayHandleClient(ModelClient):
    """Call the deployment's predict() through a DeploymentHandle, as a driver joined to the Ray cluster:
    no HTTP proxy between the caller and the replica, which halves the CPU and latency of a call
    (loadtests/results/spine.json)."""

    def __init__(self, ray_address: str, auth_token: str, service: str) -> None:
        from shared.serving.ray_driver import connect

        # Ray is imported (in _wait_for_handle) after connect() has set the environment it reads at
        # import; and only processes that call Ray deployments need it.
        connect(ray_address, auth_token)
        self.service = service
        # By value over Serve's gRPC channel to the replica instead of Ray actor calls and object refs
        # (nothing here passes a response on to another deployment): at 100 no-op calls/s this cut the
        # caller's CPU from 28 % to 15 % of a core and the replica's from 27 % to 17 %. The payload is
        # bytes, so plain pickle is enough.
        self._handle = _wait_for_handle(service).options(
            _by_reference=False, request_serialization="pickle", response_serialization="pickle"
        )
        self._streaming_handle = self._handle.options(stream=True)

    def predict(self, request: bytes, timeout_s: float) -> bytes:
        response = self._handle.predict.remote(request)
        try:
            return response.result(timeout_s=timeout_s)
        except TimeoutError as exc:
            response.cancel()
            raise TimeoutError(f"ray deployment {self.service} did not answer within {timeout_s} s") from exc
        except InvalidRequest as exc:
            # Ray raises the replica's exception as a RayTaskError that is also an InvalidRequest.
            raise InvalidRequest(str(getattr(exc, "cause", exc))) from exc
        except Exception as exc:
            reason = getattr(exc, "cause", None) or exc
            raise ModelUnavailable(
                f"ray deployment {self.service}: {type(reason).__name__}: {reason}"
            ) from exc

    def predict_stream(self, request: bytes, timeout_s: float) -> Generator[StreamedPart, None, None]:
        """The deployment's predict_stream() through a streaming handle. A sync iteration has no timeout of
        its own, so a timer cancels the call at the deadline."""
        parts = self._streaming_handle.predict_stream.remote(request)
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            parts.cancel()

        timer = threading.Timer(timeout_s, expire)
        timer.start()
        finished = False
        try:
            for final, payload in parts:
                yield final, payload
                if final:
                    finished = True
                    return
        except InvalidRequest as exc:
            raise InvalidRequest(str(getattr(exc, "cause", exc))) from exc
        except Exception as exc:
            if expired.is_set():
                raise TimeoutError(
                    f"ray deployment {self.service} did not finish its stream within {timeout_s} s"
                ) from exc
            reason = getattr(exc, "cause", None) or exc
            raise ModelUnavailable(
                f"ray deployment {self.service}: {type(reason).__name__}: {reason}"
            ) from exc
        finally:
            timer.cancel()
            if not finished:
                parts.cancel()
        raise ModelUnavailable(f"ray deployment {self.service}: the stream ended without its response")


def _wait_for_handle(service: str) -> DeploymentHandle:
    """The deployment's handle once Serve runs it: a runner may start before the Ray host has deployed
    its applications (in the embedded stack, and in Kubernetes), and waits rather than crash-looping."""
    from ray import serve
    from ray.serve.exceptions import RayServeException

    deadline = time.monotonic() + _SERVE_WAIT_S
    while True:
        try:
            return serve.get_deployment_handle(service, app_name=service)
        except (RayServeException, KeyError, ValueError) as exc:
            if time.monotonic() > deadline:
                raise ModelUnavailable(
                    f"ray deployment {service} not served after {_SERVE_WAIT_S:g} s: {exc}"
                ) from exc
            log.info("waiting for ray deployment %s (%s)", service, exc)
            time.sleep(1.0)


def error_reason(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500]


class TritonClient(ModelClient):
    """Infer on model <service> with one BYTES item; RESPONSE holds the message, ERROR the reason if any."""

    def __init__(self, triton_grpc_url: str, service: str, decoupled: bool = False) -> None:
        self.model = service
        self.url = triton_grpc_url
        # A decoupled (streaming) model answers stream_infer only: predict() keeps its stream's response.
        self.decoupled = decoupled
        # The gRPC client is thread-safe for unary calls, not for streams: each stream opens its own.
        self._grpc = triton_grpc.InferenceServerClient(triton_grpc_url)
        self._outputs = [
            triton_grpc.InferRequestedOutput("RESPONSE"),
            triton_grpc.InferRequestedOutput("ERROR"),
        ]
        self._stream_outputs = [*self._outputs, triton_grpc.InferRequestedOutput("FINAL")]

    def predict(self, request: bytes, timeout_s: float) -> bytes:
        if self.decoupled:
            *_, (_, response) = self.predict_stream(request, timeout_s)
            return response
        item = triton_grpc.InferInput("REQUEST", [1, 1], "BYTES")
        item.set_data_from_numpy(np.array([[request]], dtype=np.object_))
        try:
            result = self._grpc.infer(self.model, [item], outputs=self._outputs, client_timeout=timeout_s)
        except InferenceServerException as exc:
            if "DEADLINE_EXCEEDED" in str(exc.status()):
                raise TimeoutError(f"triton model {self.model} did not answer within {timeout_s} s") from exc
            raise ModelUnavailable(f"triton model {self.model}: {exc.message()}") from exc
        error = result.as_numpy("ERROR")[0, 0].decode()
        if error:
            raise self._failure(error)
        return result.as_numpy("RESPONSE")[0, 0]

    def predict_stream(self, request: bytes, timeout_s: float) -> Generator[StreamedPart, None, None]:
        """stream_infer on the decoupled model: one response per part, FINAL true on the last (or ERROR)."""
        item = triton_grpc.InferInput("REQUEST", [1, 1], "BYTES")
        item.set_data_from_numpy(np.array([[request]], dtype=np.object_))
        results: queue.Queue[tuple[triton_grpc.InferResult | None, InferenceServerException | None]]
        results = queue.Queue()
        deadline = time.monotonic() + timeout_s
        client = triton_grpc.InferenceServerClient(self.url)
        try:
            client.start_stream(callback=lambda result, error: results.put((result, error)))
            client.async_stream_infer(self.model, [item], outputs=self._stream_outputs)
            while True:
                try:
                    result, error = results.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    raise TimeoutError(
                        f"triton model {self.model} did not finish its stream within {timeout_s} s"
                    ) from None
                if error is not None:
                    raise ModelUnavailable(f"triton model {self.model}: {error.message()}")
                assert result is not None
                reason = result.as_numpy("ERROR")[0, 0].decode()
                if reason:
                    raise self._failure(reason)
                final = bool(result.as_numpy("FINAL")[0, 0])
                yield final, result.as_numpy("RESPONSE")[0, 0]
                if final:
                    return
        except InferenceServerException as exc:
            raise ModelUnavailable(f"triton model {self.model}: {exc.message()}") from exc
        finally:
            client.stop_stream(cancel_requests=True)
            client.close()

    def _failure(self, error: str) -> Exception:
        """The exception for the model's ERROR output: "invalid: ..." or "error: ..."."""
        if error.startswith("invalid: "):
            return InvalidRequest(error.removeprefix("invalid: "))
        return ModelUnavailable(f"triton model {self.model}: {error.removeprefix('error: ')}")

    def close(self) -> None:
        self._grpc.close()


def model_client(spec: DeploymentSpec, endpoints: ModelEndpoints) -> ModelClient:
    """The client for the spec's backend at the service's address (Ray: through handles when the Ray
    cluster's address is known and the service has no address of its own)."""
    if spec.backend == "ray" and endpoints.ray_address and spec.service not in endpoints.services:
        return RayHandleClient(
            endpoints.ray_address, endpoints.ray_auth_token.get_secret_value(), spec.service
        )
    if spec.backend == "ray":
        return RayServeClient(endpoints.ray_serve_url_for(spec.service), spec.service)
    return TritonClient(endpoints.triton_url_for(spec.service), spec.service, decoupled=bool(spec.chunk_type))
