"""The Predictor contract: load once, predict a batch of typed protobuf requests (or stream one request's
partial outputs). No serving imports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, NamedTuple

from google.protobuf.message import Message


class InvalidRequest(ValueError):
    """The request can never succeed (bad audio, unknown voice, out-of-range value): not retried."""


class Predictor(ABC):
    """Subclasses set request_type/response_type and implement load() and predict().

    Adapters call check() on each request before batching (an InvalidRequest fails that request
    alone), then predict() on the batch; an exception from predict() fails the whole batch and is
    retried by the orchestrator.
    """

    request_type: ClassVar[type[Message]]
    response_type: ClassVar[type[Message]]

    def __init__(self, **config: Any) -> None:
        self.config = config

    def load(self) -> None:  # noqa: B027 - optional hook, not every predictor has weights
        """Load weights; called once before the first predict()."""

    def check(self, request: Message) -> None:  # noqa: B027 - optional hook, the default accepts all
        """Raise InvalidRequest with a reason a user can act on."""

    @abstractmethod
    def predict(self, batch: Sequence[Message]) -> list[Message]:
        """One response per request, in order."""


class StreamingPredictor(Predictor):
    """A predictor whose result comes in parts: predict_stream() yields chunk_type messages as soon as each
    is ready, then exactly one response_type message, the whole result (what later stages take). A
    deployment streams when its spec names the chunk type; predict() (direct calls, deployments that do
    not stream) keeps only the whole result."""

    chunk_type: ClassVar[type[Message]]

    @abstractmethod
    def predict_stream(self, request: Message) -> Iterator[Message]:
        """Chunks (chunk_type) in order, then the response (response_type); nothing after it."""

    def predict(self, batch: Sequence[Message]) -> list[Message]:
        responses = []
        for request in batch:
            *_, whole = stream_parts(self, request)
            responses.append(whole.message)
        return responses


class StreamPart(NamedTuple):
    final: bool  # False: a chunk; True: the whole response, the stream's last part
    message: Message


def stream_parts(predictor: StreamingPredictor, request: Message) -> Iterator[StreamPart]:
    """The predictor's stream, each message told apart by its type; RuntimeError for a message of neither
    type, a part after the response, or a stream that ends without one."""
    cls = type(predictor)
    finished = False
    for message in predictor.predict_stream(request):
        if finished:
            raise RuntimeError(f"{cls.__name__} yielded a message after its response")
        if isinstance(message, cls.response_type):
            finished = True
            yield StreamPart(True, message)
        elif isinstance(message, cls.chunk_type):
            yield StreamPart(False, message)
        else:
            raise RuntimeError(
                f"{cls.__name__} yielded a {type(message).__name__}, neither its chunk type "
                f"{cls.chunk_type.__name__} nor its response type {cls.response_type.__name__}"
            )
    if not finished:
        raise RuntimeError(f"{cls.__name__}'s stream ended without its response")
