"""Protobuf plumbing: requests from field paths, responses split into artifacts and JSON, and back."""

from __future__ import annotations

import pytest
from orate.v1 import common_pb2, models_pb2
from orchestrator import codec

MOTION = common_pb2.Motion(layout="arkit-52", fps=25, frames=2, dims=2, data_f32=b"\x01\x02\x03\x04" * 4)


def test_response_bytes_become_artifacts_by_field_path_and_the_rest_json() -> None:
    response = models_pb2.FaceVqvaeResponse(samples=[MOTION, common_pb2.Motion(layout="arkit-52")])
    blobs, json_response = codec.split_response(response)
    assert [(b.path, b.data, b.media_type) for b in blobs] == [
        ("samples.0.data_f32", MOTION.data_f32, "application/octet-stream")
    ]
    assert json_response == {
        "samples": [
            {"layout": "arkit-52", "fps": 25.0, "frames": 2, "dims": 2},
            {"layout": "arkit-52", "fps": 0.0, "frames": 0, "dims": 0},
        ]
    }
    assert response.samples[0].data_f32 == MOTION.data_f32  # the caller's message is left alone


def test_artifact_media_type_comes_from_the_message() -> None:
    response = models_pb2.TtsGestureResponse(
        audio=common_pb2.Audio(data=b"RIFF"), body=MOTION, face=common_pb2.Motion()
    )
    blobs, json_response = codec.split_response(response)
    assert {b.path: b.media_type for b in blobs} == {
        "audio.data": "audio/wav",  # Audio says "audio/wav unless stated"
        "body.data_f32": "application/octet-stream",
    }
    flac = codec.split_response(
        models_pb2.TtsGestureResponse(audio={"data": b"f", "media_type": "audio/flac"})
    )
    assert flac[0][0].media_type == "audio/flac"
    assert json_response["audio"] == {"media_type": ""}


def test_split_then_build_round_trips_a_nested_message() -> None:
    """A stage's outputs feed the next stage: JSON for the message, the artifact for its bytes."""
    blobs, json_response = codec.split_response(models_pb2.TtsGestureResponse(body=MOTION))
    request = codec.build_request(
        models_pb2.NerfRenderRequest,
        {"body.data_f32": blobs[0].data, "body": json_response["body"], "identity": "anny"},
    )
    assert request.body == MOTION
    assert request.identity == "anny"


def test_build_request_coerces_json_numbers_and_sets_repeated_and_enum_like_fields() -> None:
    request = codec.build_request(
        models_pb2.NerfRenderRequest,
        {
            "camera.width": 512.0,
            "camera.intrinsics": [500, 500, 256, 256],
            "audio": {"media_type": "audio/wav"},
        },
    )
    assert request.camera.width == 512
    assert list(request.camera.intrinsics) == [500, 500, 256, 256]
    assert request.audio.media_type == "audio/wav"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"intensity": 1.5}, "'intensity'"),
        ({"identity": 3}, "'identity'"),
        ({"audio.data": "not bytes"}, "takes bytes"),
        ({"audio.nope": 1}, "has no field 'nope'"),
        ({"identity.x": 1}, "not a singular message field"),
    ],
)
def test_build_request_names_the_field_that_does_not_fit(fields: dict, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        codec.build_request(models_pb2.FaceVqvaeRequest, fields)


def test_resolve_output_finds_artifacts_and_paths_inside_the_response() -> None:
    ref = common_pb2.Value(artifact=common_pb2.ArtifactRef(uri="mem://x"))
    outputs = {
        "samples.0.data_f32": ref,
        "response": codec.to_value({"samples": [{"layout": "arkit-52", "frames": 2}]}),
    }
    assert codec.resolve_output(outputs, "samples.0.data_f32") == ref
    assert codec.resolve_output(outputs, "response.samples.0.layout") == common_pb2.Value(text="arkit-52")
    assert codec.resolve_output(outputs, "response.samples.0.frames") == common_pb2.Value(number=2)
    assert codec.from_value(codec.resolve_output(outputs, "response")) == {
        "samples": [{"layout": "arkit-52", "frames": 2}]
    }
    with pytest.raises(KeyError, match="samples.1"):
        codec.resolve_output(outputs, "response.samples.1.layout")
    with pytest.raises(KeyError, match="no output 'video.data'"):
        codec.resolve_output(outputs, "video.data")


@pytest.mark.parametrize("value", ["text", 2.5, 3, True, False, {"a": [1, None, "x"]}, [1, 2]])
def test_values_round_trip(value: object) -> None:
    assert codec.from_value(codec.to_value(value)) == value


def test_value_kinds_are_typed() -> None:
    assert codec.to_value(True).WhichOneof("kind") == "flag"
    assert codec.to_value(1).WhichOneof("kind") == "number"
    ref = common_pb2.ArtifactRef(uri="mem://a")
    assert codec.from_value(codec.to_value(ref)) == ref
    assert codec.from_value(common_pb2.Value()) is None


def test_load_time_path_checks() -> None:
    request = models_pb2.FaceVqvaeRequest.DESCRIPTOR
    response = models_pb2.FaceVqvaeResponse.DESCRIPTOR
    codec.check_request_path(request, "audio.data")
    codec.check_output_path(response, "samples.3.data_f32")
    codec.check_output_path(response, "response.samples.0.layout")
    codec.check_output_path(response, "response")
    with pytest.raises(ValueError, match="needs an index"):
        codec.check_output_path(response, "samples.data_f32")
    with pytest.raises(ValueError, match="not a bytes field"):
        codec.check_output_path(response, "samples.0.layout")
