"""The REST API's JSON shapes (they make the OpenAPI document) and their construction from protobuf."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orate.v1 import common_pb2, jobs_pb2
from pydantic import BaseModel, Field

from orchestrator import codec
from orchestrator.jobs import INPUTS_STAGE
from orchestrator.pipelines import MEDIA_TYPES, InputSpec, Pipeline


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. invalid_input")
    message: str = Field(description="what is wrong, for a person")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ReadyView(BaseModel):
    ready: bool
    checks: dict[str, bool] = Field(description="dependency -> reachable")


class SubmitRequest(BaseModel):
    pipeline: str
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description='input name -> value; audio and image inputs as {"base64": ..., "media_type": ...} '
        "(or as file parts of a multipart request)",
    )


class ArtifactLink(BaseModel):
    url: str
    media_type: str
    size_bytes: int
    sha256: str


class StageView(BaseModel):
    service: str
    status: str
    attempt: int
    dispatched_unix_ms: int | None
    finished_unix_ms: int | None
    duration_ms: float | None = Field(description="dispatch of the latest attempt to its result")
    model_latency_ms: float | None = Field(description="time inside the model deployment")
    error: str | None
    outputs: dict[str, Any] = Field(description='`response` (JSON) and artifact paths -> {"artifact": link}')


class JobView(BaseModel):
    job_id: str
    pipeline: str
    tenant: str = Field(description="the tenant the job belongs to: the one whose key submitted it")
    status: str = Field(description="queued | running | succeeded | failed | cancelled")
    created_unix_ms: int
    finished_unix_ms: int | None
    error: str | None
    inputs: dict[str, Any]
    stages: dict[str, StageView]
    outputs: dict[str, Any]
    links: dict[str, str]


class JobListView(BaseModel):
    jobs: list[JobView] = Field(description="newest first; fewer than limit, even none, if there are more")
    next_cursor: str | None = Field(description="the next page's `cursor`; null: there are no more jobs")


class StageSummary(BaseModel):
    name: str
    service: str
    needs: list[str]


class PipelineView(BaseModel):
    name: str
    description: str
    inputs: dict[str, InputSpec]
    stages: list[StageSummary]
    outputs: list[str]


# An inline media input of a JSON submit; extra keys are ignored.
MEDIA_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["base64"],
    "properties": {
        "base64": {"type": "string", "contentEncoding": "base64"},
        "media_type": {"type": "string", "description": "e.g. audio/wav; probed from the data when left out"},
    },
}
SCALAR_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "voice": {"type": "string", "description": "one of the pipeline's voices (its enum)"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "json": {},
}
# One server-sent event of GET /v1/jobs/{job_id}/events (OpenAPI 3.2 `itemSchema`, which FastAPI's own SSE
# routes emit in 3.1 documents as well).
JOB_EVENT_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {
            "type": "string",
            "description": "the CloudEvent id: <job>:<type>:<stage>:<attempt> (a chunk's: then :<sequence>)",
        },
        "event": {
            "type": "string",
            "description": "the CloudEvent type, e.g. orate.job.completed; orate.stage.chunk for each chunk "
            "a streaming stage's model yields, before the stage completes",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/cloudevents+json",
            "description": "the CloudEvent (structured JSON); its `data` is the JobEvent",
        },
    },
}


def submit_request_schema(pipelines: Iterable[Pipeline], media_as_parts: bool = False) -> dict[str, Any]:
    """The JSON schema of a submit request: one variant per pipeline, its inputs typed, required ones
    required and unknown ones refused, as the job service checks them. With media_as_parts (the `request`
    part of a multipart submit) media inputs may be file parts instead, so none of them is required."""
    variants = []
    for pipeline in pipelines:
        required = [
            name
            for name in pipeline.missing_inputs(())
            if not (media_as_parts and pipeline.inputs[name].type in MEDIA_TYPES)
        ]
        inputs: dict[str, Any] = {
            "type": "object",
            "properties": {name: input_schema(spec) for name, spec in pipeline.inputs.items()},
            "additionalProperties": False,
        }
        if required:
            inputs["required"] = required
        variants.append(
            {
                "title": pipeline.name,
                "description": pipeline.description,
                "type": "object",
                "required": ["pipeline", "inputs"] if required else ["pipeline"],
                "properties": {"pipeline": {"const": pipeline.name}, "inputs": inputs},
            }
        )
    # Without pipelines every submit is an unknown pipeline's (404); oneOf must not be empty.
    return {"oneOf": variants} if variants else SubmitRequest.model_json_schema()


def input_schema(spec: InputSpec) -> dict[str, Any]:
    """The JSON schema of one input's value, with the constraints InputSpec.check_value applies."""
    schema = dict(MEDIA_OBJECT_SCHEMA if spec.type in MEDIA_TYPES else SCALAR_SCHEMAS[spec.type])
    constraints = {
        "enum": spec.choices,
        "minimum": spec.minimum,
        "maximum": spec.maximum,
        "minLength": spec.min_length,
        "maxLength": spec.max_length,
        "default": spec.default,
        "description": spec.description or None,
    }
    schema.update({key: value for key, value in constraints.items() if value is not None})
    return schema


def job_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def job_view(job: jobs_pb2.Job) -> JobView:
    links = _artifact_links(job)
    stages = {}
    for name, state in job.stages.items():
        finished = state.finished_unix_ms or None
        stages[name] = StageView(
            service=state.service,
            status=jobs_pb2.StageStatus.Name(state.status).removeprefix("STAGE_STATUS_").lower(),
            attempt=state.attempt,
            dispatched_unix_ms=state.dispatched_unix_ms or None,
            finished_unix_ms=finished,
            duration_ms=finished - state.dispatched_unix_ms
            if finished and state.dispatched_unix_ms
            else None,
            model_latency_ms=state.model_latency_ms or None,
            error=state.error or None,
            outputs={path: _value(value, links) for path, value in state.outputs.items()},
        )
    url = job_url(job.job_id)
    return JobView(
        job_id=job.job_id,
        pipeline=job.pipeline,
        tenant=job.tenant,
        status=jobs_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower(),
        created_unix_ms=job.created_unix_ms,
        finished_unix_ms=job.finished_unix_ms or None,
        error=job.error or None,
        inputs={name: _value(value, links) for name, value in job.inputs.items()},
        stages=stages,
        outputs={name: _value(value, links) for name, value in job.outputs.items()},
        links={"self": url, "events": f"{url}/events", "cancel": f"{url}:cancel"},
    )


def pipeline_view(pipeline: Pipeline) -> PipelineView:
    return PipelineView(
        name=pipeline.name,
        description=pipeline.description,
        inputs=pipeline.inputs,
        stages=[
            StageSummary(name=stage.name, service=stage.service, needs=sorted(stage.dependencies()))
            for stage in pipeline.order()
        ],
        outputs=list(pipeline.outputs),
    )


def _artifact_links(job: jobs_pb2.Job) -> dict[str, str]:
    """Artifact URI -> download URL, for every input and stage output artifact of the job."""
    located = [(INPUTS_STAGE, name, value) for name, value in job.inputs.items()]
    located += [
        (stage, path, value) for stage, state in job.stages.items() for path, value in state.outputs.items()
    ]
    return {
        value.artifact.uri: f"{job_url(job.job_id)}/artifacts/{stage}/{path}"
        for stage, path, value in located
        if value.WhichOneof("kind") == "artifact"
    }


def _value(value: common_pb2.Value, links: dict[str, str]) -> Any:
    if value.WhichOneof("kind") != "artifact":
        return codec.from_value(value)
    ref = value.artifact
    link = ArtifactLink(
        url=links.get(ref.uri, ""), media_type=ref.media_type, size_bytes=ref.size_bytes, sha256=ref.sha256
    )
    return {"artifact": link.model_dump()}
