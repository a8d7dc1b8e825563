"""The streaming form of the Predictor contract: chunks told from the response by type, a streaming
deployment declared by its chunk type and checked, the HTTP frames, the decoupled Triton config and the
chunk events' ids."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import Message
from orate.v1 import jobs_pb2

from shared import events
from shared.serving import stream_frames
from shared.serving.deployments import DeploymentError, DeploymentSpec, build_predictor
from shared.serving.predictor import StreamingPredictor, stream_parts
from shared.serving.triton import model_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES / "proto"))
from orate_fixtures.v1 import fixtures_pb2 as fx  # noqa: E402

CHUNKER = {
    "service": "chunker",
    "backend": "ray",
    "predictor": "fixture_predictors:Chunker",
    "request_type": "orate.fixtures.v1.ChunkRequest",
    "response_type": "orate.fixtures.v1.ChunkResponse",
    "chunk_type": "orate.fixtures.v1.Chunk",
}


class Scripted(StreamingPredictor):
    """Yields what the test scripted."""

    request_type = fx.ChunkRequest
    response_type = fx.ChunkResponse
    chunk_type = fx.Chunk

    def __init__(self, script: list[Message]) -> None:
        super().__init__()
        self.script = script

    def predict_stream(self, request: Message) -> Iterator[Message]:
        yield from self.script


def build(**overrides: object) -> StreamingPredictor:
    spec = DeploymentSpec.model_validate(CHUNKER | overrides)
    predictor = build_predictor(spec, python_path=[str(FIXTURES), str(FIXTURES / "proto")])
    assert isinstance(predictor, StreamingPredictor)
    return predictor


def test_parts_are_chunks_then_the_response_and_predict_keeps_the_response() -> None:
    chunker = build()
    parts = list(stream_parts(chunker, fx.ChunkRequest(chunks=3, tag="t")))
    assert [part.final for part in parts] == [False, False, False, True]
    assert [part.message.index for part in parts[:-1]] == [0, 1, 2]
    assert [part.message.data for part in parts[:-1]] == [f"chunk {i} of t".encode() for i in range(3)]
    # Each chunk carries the time it was yielded: non-decreasing, the last one's is the response's.
    stamps = [part.message.emitted_unix_s for part in parts[:-1]]
    assert stamps == sorted(stamps) and parts[-1].message.last_emitted_unix_s == stamps[-1]
    (whole,) = chunker.predict([fx.ChunkRequest(chunks=3, tag="t")])
    assert whole.data == b"".join(part.message.data for part in parts[:-1]) and whole.chunks == 3


BROKEN_STREAMS = {
    "a message of neither type": ([fx.SleepResponse()], "yielded a SleepResponse, neither"),
    "a part after the response": ([fx.ChunkResponse(), fx.Chunk()], "after its response"),
    "no response": ([fx.Chunk(), fx.Chunk()], "ended without its response"),
}


@pytest.mark.parametrize(("script", "reason"), BROKEN_STREAMS.values(), ids=BROKEN_STREAMS.keys())
def test_a_stream_that_breaks_the_contract_raises(script: list[Message], reason: str) -> None:
    with pytest.raises(RuntimeError, match=reason):
        list(stream_parts(Scripted(script), fx.ChunkRequest()))


def test_a_model_failure_mid_stream_comes_after_the_chunks_before_it() -> None:
    parts = stream_parts(build(), fx.ChunkRequest(chunks=4, fail_after=2))
    assert [next(parts).message.index, next(parts).message.index] == [0, 1]
    with pytest.raises(RuntimeError, match="fixture failure after 2 chunks"):
        next(parts)


BAD_SPECS = {
    "not a streaming predictor": (
        {
            "predictor": "fixture_predictors:Sleeper",
            "request_type": "orate.fixtures.v1.SleepRequest",
            "response_type": "orate.fixtures.v1.SleepResponse",
        },
        "is not a shared.serving.StreamingPredictor",
    ),
    "another chunk type": (
        {"chunk_type": "orate.fixtures.v1.SleepResponse"},
        "uses 'orate.fixtures.v1.Chunk'",
    ),
}


@pytest.mark.parametrize(("overrides", "reason"), BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_a_streaming_spec_must_match_its_predictor(overrides: dict, reason: str) -> None:
    with pytest.raises(DeploymentError, match=reason):
        build(**overrides)


def test_a_streaming_predictor_serves_whole_responses_where_its_spec_does_not_stream() -> None:
    predictor = build(chunk_type="")
    assert predictor.predict([fx.ChunkRequest(chunks=2, tag="u")])[0].chunks == 2


@pytest.mark.parametrize("piece", [1, 3, 7, 1000])
def test_frames_arrive_whole_however_the_body_is_cut(piece: int) -> None:
    frames = [(stream_frames.CHUNK, b"one"), (stream_frames.CHUNK, b""), (stream_frames.RESPONSE, b"x" * 300)]
    body = b"".join(stream_frames.encode_frame(kind, payload) for kind, payload in frames)
    pieces = [body[i : i + piece] for i in range(0, len(body), piece)]
    assert list(stream_frames.read_frames(pieces)) == frames


def test_frames_that_are_not_refuse() -> None:
    with pytest.raises(stream_frames.FrameError, match="unknown frame kind"):
        list(stream_frames.read_frames([b"z\0\0\0\0"]))
    with pytest.raises(stream_frames.FrameError, match="ended inside a frame"):
        list(stream_frames.read_frames([stream_frames.encode_frame(stream_frames.CHUNK, b"abc")[:-1]]))


def test_only_a_streaming_deployment_is_a_decoupled_triton_model() -> None:
    streaming = model_config(DeploymentSpec.model_validate(CHUNKER | {"backend": "triton"}), [], [])
    assert streaming.model_transaction_policy.decoupled
    assert [output.name for output in streaming.output] == ["RESPONSE", "ERROR", "FINAL"]
    assert streaming.parameters["chunk_type"].string_value == "orate.fixtures.v1.Chunk"
    whole = model_config(
        DeploymentSpec.model_validate(CHUNKER | {"backend": "triton", "chunk_type": ""}), [], []
    )
    assert not whole.model_transaction_policy.decoupled
    assert [output.name for output in whole.output] == ["RESPONSE", "ERROR"]


def test_each_chunk_event_has_an_id_of_its_own() -> None:
    chunk = jobs_pb2.JobEvent(job_id="j", type=events.STAGE_CHUNK, stage="s", attempt=2, sequence=5)
    assert events.event_id(chunk) == "j:orate.stage.chunk:s:2:5"
    completed = jobs_pb2.JobEvent(job_id="j", type=events.STAGE_COMPLETED, stage="s", attempt=2)
    assert events.event_id(completed) == "j:orate.stage.completed:s:2"
