"""Job inputs checked against a pipeline's input specs (voices against its choices); media validated."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import InvalidInput
from orchestrator.pipelines import InputSpec, Pipeline
from shared.media import validate_audio, validate_image


@dataclass(frozen=True)
class MediaUpload:
    """An uploaded audio or image input; media_type empty when the client did not say."""

    data: bytes
    media_type: str = ""


def check_inputs(pipeline: Pipeline, values: Mapping[str, Any], max_audio_seconds: float) -> dict[str, Any]:
    """The inputs with media as validated MediaUploads (inline `{"base64", "media_type"}` objects decoded);
    raises InvalidInput naming every unknown, missing, mistyped or unusable input."""
    problems = [f"unknown input {name!r}" for name in values if name not in pipeline.inputs]
    problems += [f"missing required input {name!r}" for name in pipeline.missing_inputs(values)]
    checked: dict[str, Any] = {}
    for name, value in values.items():
        spec = pipeline.inputs.get(name)
        if spec is None:
            continue
        try:
            checked[name] = _check(spec, value, max_audio_seconds)
        except ValueError as exc:  # MediaError is a ValueError
            problems.append(f"input {name!r}: {exc}")
    if problems:
        allowed = ", ".join(f"{name} ({spec.type})" for name, spec in pipeline.inputs.items())
        raise InvalidInput(f"{'; '.join(problems)} (pipeline {pipeline.name!r} takes: {allowed})")
    return checked


def _check(spec: InputSpec, value: Any, max_audio_seconds: float) -> Any:
    if spec.type == "audio":
        upload = _upload(value)
        limit = min(spec.max_seconds or math.inf, max_audio_seconds)
        info = validate_audio(upload.data, min_seconds=spec.min_seconds, max_seconds=limit)
        return MediaUpload(upload.data, upload.media_type or f"audio/{info.format.lower()}")
    if spec.type == "image":
        upload = _upload(value)
        image = validate_image(upload.data)
        return MediaUpload(upload.data, upload.media_type or f"image/{image.format.lower()}")
    spec.check_value(value)
    return value


def _upload(value: Any) -> MediaUpload:
    if isinstance(value, MediaUpload):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("base64"), str):
        raise ValueError('expected a file part or an object {"base64": ..., "media_type": ...}')
    try:
        data = base64.b64decode(value["base64"], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from exc
    media_type = value.get("media_type", "")
    if not isinstance(media_type, str):
        raise ValueError("media_type must be a string")
    return MediaUpload(data, media_type)
