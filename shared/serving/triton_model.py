"""Triton Python-backend adapter: a generic TritonPythonModel hosting the Predictor named in config.pbtxt."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from google.protobuf.message import DecodeError, Message

from shared.serving.deployments import DeploymentSpec, build_predictor
from shared.serving.predictor import InvalidRequest, StreamingPredictor, stream_parts

# Per item: (serialized response, error). The error is "" on success, "invalid: ..." for a request
# that can never succeed, "error: ..." for a failure that may pass on retry.
Outcome = tuple[bytes, str]


def bytes_tensor(name: str, values: list[bytes]) -> Any:
    return pb_utils.Tensor(name, np.array(values, dtype=np.object_).reshape(-1, 1))


def stream_response(response: bytes, error: str, final: bool) -> Any:
    return pb_utils.InferenceResponse(
        output_tensors=[
            bytes_tensor("RESPONSE", [response]),
            bytes_tensor("ERROR", [error.encode()]),
            pb_utils.Tensor("FINAL", np.array([[final]], dtype=np.bool_)),
        ]
    )


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        spec = DeploymentSpec(
            service=args["model_name"],
            backend="triton",
            predictor=params["predictor"],
            request_type=params["request_type"],
            response_type=params["response_type"],
            chunk_type=params.get("chunk_type", ""),
            predictor_config=json.loads(params["predictor_config"]),
        )
        self.predictor = build_predictor(
            spec,
            python_path=json.loads(params["python_path"]),
            proto_modules=json.loads(params["proto_modules"]),
        )
        self.request_type = type(self.predictor).request_type
        # A streaming (decoupled) model streams each request of a batch in a thread of its own, so that no
        # request's first chunk waits for another request's whole stream.
        self.stream_pool = (
            ThreadPoolExecutor(max(config["max_batch_size"], 1), thread_name_prefix="stream")
            if spec.chunk_type
            else None
        )

    def finalize(self) -> None:
        if self.stream_pool is not None:
            self.stream_pool.shutdown(wait=True)

    def execute(self, requests: list[Any]) -> list[Any] | None:
        """Check every item of every request, then predict all valid items in one batch (a streaming model
        answers through each request's response sender instead)."""
        if self.stream_pool is not None:
            for request in requests:
                self.stream_pool.submit(self.stream, request)
            return None
        outcomes: list[list[Outcome]] = []
        valid: list[tuple[int, int, Message]] = []
        for i, request in enumerate(requests):
            items = pb_utils.get_input_tensor_by_name(request, "REQUEST").as_numpy().reshape(-1)
            outcomes.append([])
            for j, data in enumerate(items):
                try:
                    message = self.request_type.FromString(bytes(data))
                    self.predictor.check(message)
                except DecodeError as exc:
                    outcomes[i].append(
                        (b"", f"invalid: not a serialized {self.request_type.DESCRIPTOR.full_name}: {exc}")
                    )
                except InvalidRequest as exc:
                    outcomes[i].append((b"", f"invalid: {exc}"))
                else:
                    outcomes[i].append((b"", ""))
                    valid.append((i, j, message))
        if valid:
            for (i, j, _), outcome in zip(valid, self.predict([m for _, _, m in valid]), strict=True):
                outcomes[i][j] = outcome
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    bytes_tensor("RESPONSE", [response for response, _ in row]),
                    bytes_tensor("ERROR", [error.encode() for _, error in row]),
                ]
            )
            for row in outcomes
        ]

    def stream(self, request: Any) -> None:
        """One response per part of the request's stream (FINAL true on the response), or one with the
        ERROR that ends it; then the stream's end."""
        sender = request.get_response_sender()
        try:
            items = pb_utils.get_input_tensor_by_name(request, "REQUEST").as_numpy().reshape(-1)
            if len(items) != 1:
                raise InvalidRequest(f"a streamed request carries one item, not {len(items)}")
            message = self.request_type.FromString(bytes(items[0]))
            self.predictor.check(message)
            assert isinstance(self.predictor, StreamingPredictor)
            for part in stream_parts(self.predictor, message):
                sender.send(stream_response(part.message.SerializeToString(), "", part.final))
        except DecodeError as exc:
            name = self.request_type.DESCRIPTOR.full_name
            sender.send(stream_response(b"", f"invalid: not a serialized {name}: {exc}", True))
        except InvalidRequest as exc:
            sender.send(stream_response(b"", f"invalid: {exc}", True))
        except Exception as exc:
            pb_utils.Logger.log_error(f"stream failed: {type(exc).__name__}: {exc}")
            sender.send(stream_response(b"", f"error: {type(exc).__name__}: {exc}", True))
        finally:
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def predict(self, batch: list[Message]) -> list[Outcome]:
        try:
            responses = self.predictor.predict(batch)
            if len(responses) != len(batch):
                raise RuntimeError(f"predictor returned {len(responses)} responses for {len(batch)} requests")
        except InvalidRequest as exc:
            return [(b"", f"invalid: {exc}")] * len(batch)
        except Exception as exc:
            pb_utils.Logger.log_error(f"predict failed: {type(exc).__name__}: {exc}")
            return [(b"", f"error: {type(exc).__name__}: {exc}")] * len(batch)
        return [(response.SerializeToString(), "") for response in responses]
