"""Pipelines as data: the YAML model, its sources, load-time validation and the stage graph."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from orate.v1 import jobs_pb2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator import codec
from shared.protos import message_class
from shared.serving.deployments import DeploymentsFile
from shared.store import HEARTBEAT_TTL_S

NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"
log = logging.getLogger(__name__)
INPUTS_PREFIX = "$inputs."
STAGES_PREFIX = "$stages."
InputType = Literal["text", "number", "boolean", "audio", "image", "voice", "json"]
MEDIA_TYPES: frozenset[str] = frozenset({"audio", "image"})
SCALAR_CHECKS: dict[str, Callable[[Any], bool]] = {
    "text": lambda v: isinstance(v, str),
    "voice": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "json": lambda v: True,
    # media arrive as uploads, never as plain values
    "audio": lambda v: False,
    "image": lambda v: False,
}


class PipelineError(ValueError):
    """A pipeline file that cannot be used, with the file and the reason."""


class ServiceNotDeployed(PipelineError):
    """A well-formed pipeline that names a service the deployments file does not deploy."""


@dataclass(frozen=True)
class InputRef:
    name: str


@dataclass(frozen=True)
class StageRef:
    stage: str
    path: str


@dataclass(frozen=True)
class LiteralValue:
    value: Any


Source = InputRef | StageRef | LiteralValue


def parse_source(raw: Any) -> Source:
    """`$inputs.<name>`, `$stages.<stage>.<output path>`, or any other value as a literal."""
    if isinstance(raw, str) and raw.startswith(INPUTS_PREFIX):
        name = raw.removeprefix(INPUTS_PREFIX)
        if not re.match(NAME_PATTERN, name):
            raise ValueError(f"bad input reference {raw!r}")
        return InputRef(name)
    if isinstance(raw, str) and raw.startswith(STAGES_PREFIX):
        stage, _, path = raw.removeprefix(STAGES_PREFIX).partition(".")
        if not stage or not path:
            raise ValueError(f"bad stage reference {raw!r}: expected $stages.<stage>.<output path>")
        return StageRef(stage, path)
    return LiteralValue(raw)


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: InputType
    required: bool = False
    default: Any = None
    description: str = ""
    min_seconds: float = Field(0.0, ge=0, description="audio only")
    max_seconds: float | None = Field(None, gt=0, description="audio only; the API's cap applies as well")
    choices: list[Any] | None = Field(None, description="the values allowed, when it is a closed set")
    minimum: float | None = Field(None, description="numbers only")
    maximum: float | None = Field(None, description="numbers only")
    min_length: int | None = Field(None, ge=0, description="text only: characters")
    max_length: int | None = Field(None, gt=0, description="text only: characters")

    @model_validator(mode="after")
    def _check(self) -> InputSpec:
        if self.type in MEDIA_TYPES and self.default is not None:
            raise ValueError(f"{self.type} inputs cannot have a default")
        if self.type != "audio" and (self.min_seconds or self.max_seconds is not None):
            raise ValueError("min_seconds/max_seconds apply to audio inputs only")
        if self.type != "number" and (self.minimum is not None or self.maximum is not None):
            raise ValueError("minimum/maximum apply to number inputs only")
        if self.type != "text" and (self.min_length is not None or self.max_length is not None):
            raise ValueError("min_length/max_length apply to text inputs only")
        # The orchestrator knows no TTS engine: a pipeline's voices are data, the ones its speaking
        # service's checkpoint has, listed here so that a submit with any other is refused with the list.
        if self.type == "voice" and not self.choices:
            raise ValueError("voice inputs must list their voices in `choices` (the speaking service's)")
        if self.default is not None:
            self.check_value(self.default)
        return self

    def check_value(self, value: Any) -> None:
        """Raise ValueError unless a non-media value has this input's type (json takes any value)."""
        if not SCALAR_CHECKS[self.type](value):
            raise ValueError(f"expected a {self.type}, got {type(value).__name__}")
        if self.choices is not None and value not in self.choices:
            what = "unknown voice " if self.type == "voice" else ""
            raise ValueError(f"{what}{value!r} is not one of {', '.join(map(str, self.choices))}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{value} is below the minimum {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{value} is above the maximum {self.maximum:g}")
        if self.min_length is not None and len(value) < self.min_length:
            raise ValueError(f"{len(value)} characters, fewer than the minimum {self.min_length}")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValueError(f"{len(value)} characters, more than the maximum {self.max_length}")


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    service: str
    request: dict[str, Any] = {}
    needs: list[str] = []
    timeout_s: float = Field(60.0, gt=0, description="the model call's budget")
    max_attempts: int = Field(3, ge=1)
    backoff_s: float = Field(0.5, ge=0)
    # The engine's deadlines: a runner must pick the work item up within schedule_to_start_s (of its
    # dispatch, or of the end of its retry backoff), then heartbeat at least every heartbeat_timeout_s and
    # report within timeout_s plus the engine's grace. Expiry counts as a retryable failure of the attempt.
    schedule_to_start_s: float = Field(60.0, gt=0, description="queueing included: size it for backlogs")
    heartbeat_timeout_s: float = Field(30.0, gt=0, le=HEARTBEAT_TTL_S / 2)

    def sources(self) -> dict[str, Source]:
        return {path: parse_source(raw) for path, raw in self.request.items()}

    def dependencies(self) -> set[str]:
        """Every stage this one references, plus its explicit needs."""
        refs = {source.stage for source in self.sources().values() if isinstance(source, StageRef)}
        return refs | set(self.needs)


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    inputs: dict[str, InputSpec] = {}
    stages: list[StageSpec] = Field(min_length=1)
    outputs: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check_graph(self) -> Pipeline:
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names in {names}")
        for input_name in self.inputs:
            if not re.match(NAME_PATTERN, input_name):
                raise ValueError(f"bad input name {input_name!r}")
        for where, sources in self.all_sources():
            for source in sources:
                if isinstance(source, InputRef) and source.name not in self.inputs:
                    raise ValueError(
                        f"{where}: unknown input {source.name!r} (inputs: {sorted(self.inputs)})"
                    )
                if isinstance(source, StageRef) and source.stage not in names:
                    raise ValueError(f"{where}: unknown stage {source.stage!r} (stages: {names})")
        for stage in self.stages:
            unknown = set(stage.needs) - set(names)
            if unknown:
                raise ValueError(f"stage {stage.name!r} needs unknown stages {sorted(unknown)}")
            if stage.name in stage.dependencies():
                raise ValueError(f"stage {stage.name!r} depends on itself")
        self.order()  # raises on a cycle
        return self

    def all_sources(self) -> Iterable[tuple[str, Iterable[Source]]]:
        for stage in self.stages:
            yield f"stage {stage.name!r}", stage.sources().values()
        yield "outputs", self.output_sources().values()

    def output_sources(self) -> dict[str, Source]:
        return {name: parse_source(raw) for name, raw in self.outputs.items()}

    def missing_inputs(self, provided: Iterable[str]) -> list[str]:
        """Required inputs that are neither provided nor defaulted."""
        given = set(provided)
        return [
            name
            for name, spec in self.inputs.items()
            if spec.required and spec.default is None and name not in given
        ]

    def stage(self, name: str) -> StageSpec:
        return next(stage for stage in self.stages if stage.name == name)

    def order(self) -> list[StageSpec]:
        """The stages in topological order (declaration order among equals); ValueError on a cycle."""
        remaining = {stage.name: stage.dependencies() for stage in self.stages}
        ordered: list[StageSpec] = []
        while remaining:
            ready = [stage for stage in self.stages if remaining.get(stage.name) == set()]
            if not ready:
                raise ValueError(f"the stages {sorted(remaining)} form a cycle")
            for stage in ready:
                del remaining[stage.name]
                ordered.append(stage)
            for deps in remaining.values():
                deps.difference_update(stage.name for stage in ready)
        return ordered

    def ready_stages(self, statuses: Mapping[str, jobs_pb2.StageStatus.ValueType]) -> list[StageSpec]:
        """Pending stages whose dependencies have all succeeded, in topological order."""
        return [
            stage
            for stage in self.order()
            if statuses.get(stage.name) == jobs_pb2.STAGE_STATUS_PENDING
            and all(statuses.get(dep) == jobs_pb2.STAGE_STATUS_SUCCEEDED for dep in stage.dependencies())
        ]

    def pending_stages(self) -> dict[str, jobs_pb2.StageState]:
        """The stage states of a job that has not started (stage name -> state)."""
        return {
            stage.name: jobs_pb2.StageState(
                name=stage.name, service=stage.service, status=jobs_pb2.STAGE_STATUS_PENDING
            )
            for stage in self.stages
        }

    def to_proto(self) -> jobs_pb2.Pipeline:
        return jobs_pb2.Pipeline(
            name=self.name,
            description=self.description,
            stages=[stage.name for stage in self.stages],
            services=sorted({stage.service for stage in self.stages}),
            inputs=list(self.inputs),
        )


def check_services(pipeline: Pipeline, deployments: DeploymentsFile) -> None:
    """Every stage's service is deployed, its request paths exist in the request type, and every
    reference to its outputs exists in the response type."""
    specs = {spec.service: spec for spec in deployments.deployments}
    responses = {}
    for stage in pipeline.stages:
        spec = specs.get(stage.service)
        if spec is None:
            raise ServiceNotDeployed(
                f"stage {stage.name!r}: service {stage.service!r} is not in the deployments file"
            )
        request = message_class(spec.request_type, deployments.proto_modules).DESCRIPTOR
        for path in stage.request:
            codec.check_request_path(request, path)
        responses[stage.name] = message_class(spec.response_type, deployments.proto_modules).DESCRIPTOR
    for _, sources in pipeline.all_sources():
        for source in sources:
            if isinstance(source, StageRef):
                codec.check_output_path(responses[source.stage], source.path)


def load_pipeline(path: Path, deployments: DeploymentsFile) -> Pipeline:
    try:
        pipeline = Pipeline.model_validate(yaml.safe_load(path.read_text()))
        check_services(pipeline, deployments)
    except ServiceNotDeployed as exc:
        raise ServiceNotDeployed(f"{path}: {exc}") from exc
    except (yaml.YAMLError, ValidationError, ValueError, KeyError) as exc:
        raise PipelineError(f"{path}: {exc}") from exc
    return pipeline


def load_pipelines(dirs: Iterable[Path], deployments: DeploymentsFile) -> dict[str, Pipeline]:
    """Every *.yaml / *.yml pipeline in the dirs, by name; PipelineError on the first bad or duplicate one.
    A pipeline whose services are not all deployed is left out with a warning: an SRE who turns a model
    off keeps the other pipelines."""
    pipelines: dict[str, Pipeline] = {}
    origins: dict[str, Path] = {}
    for directory in dirs:
        if not directory.is_dir():
            raise PipelineError(f"pipeline directory {directory} does not exist")
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            try:
                pipeline = load_pipeline(path, deployments)
            except ServiceNotDeployed as exc:
                log.warning("pipeline not served: %s", exc)
                continue
            if pipeline.name in pipelines:
                raise PipelineError(
                    f"{path}: pipeline {pipeline.name!r} is also defined in {origins[pipeline.name]}"
                )
            pipelines[pipeline.name] = pipeline
            origins[pipeline.name] = path
    return pipelines
