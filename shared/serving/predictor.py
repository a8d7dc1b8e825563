"""The Predictor contract: load once, predict a batch of typed protobuf requests. No serving imports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

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
