"""Orchestrator settings: the shared blocks plus the API, the deployments file and the pipeline dirs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from shared.settings import OrateSettings
from shared.tenants import QuotaLimits

BUILTIN_PIPELINES_DIR = Path(__file__).parent / "pipelines"


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    http_port: int = 29600
    grpc_port: int = 29601
    max_body_bytes: int = Field(50 * 1024 * 1024, ge=1)
    # A cap on every audio input, whatever a pipeline allows.
    max_audio_seconds: float = Field(600.0, gt=0)
    submit_ack_timeout_s: float = Field(10.0, gt=0, description="a submit waits this long for the broker")
    events_idle_timeout_s: float = Field(300.0, gt=0, description="an event stream ends after this silence")
    # Each direct model call holds a thread while its model works; they have threads of their own, so
    # long calls never take the 40 that job requests share. Calls beyond this wait, holding none.
    direct_calls_in_flight: int = Field(16, ge=1, description="direct model calls running at once")
    # keys: every /v1 request and gRPC call needs an API key. open (development only): a request without
    # one acts as tenant `dev`; a key, if given, must still be valid and identifies its own tenant.
    auth: Literal["keys", "open"] = Field("keys", description="keys (required) or open (development)")
    quota: QuotaLimits = Field(default_factory=QuotaLimits, description="limits of tenants without their own")
    # Per-tenant Prometheus series: the first this many distinct tenants a process sees get their own label
    # value, every later one `_other`, so that the series stay bounded whatever the number of tenants.
    tenant_metric_labels: int = Field(20, ge=0, description="tenants with series of their own")


class RunnerSettings(BaseModel):
    concurrency: int = Field(16, ge=1, description="work items a runner has in flight (one poll batch)")


class EngineSettings(BaseModel):
    deadline_scan_interval_s: float = Field(0.5, gt=0, description="how often to look for due timers")
    # Beyond a stage's timeout_s (the model call's budget): fetching inputs, storing outputs, reporting.
    start_to_close_grace_s: float = Field(30.0, ge=0, description="added to timeout_s for start-to-close")
    deadline_resend_s: float = Field(5.0, gt=0, description="a deadline command not applied is resent")


class OrchestratorSettings(OrateSettings):
    api: ApiSettings = ApiSettings()
    engine: EngineSettings = EngineSettings()
    runner: RunnerSettings = RunnerSettings()
    deployments_file: Path = Path("deployments.yaml")
    # NoDecode: the env var is an os.pathsep-separated list (like PATH), not JSON.
    pipeline_dirs: Annotated[list[Path], NoDecode] = [BUILTIN_PIPELINES_DIR]
    metrics_port: int | None = Field(None, description="engine and runners serve /metrics here when set")
    # Loopback by default (the embedded stack); a pod sets 0.0.0.0 so that Prometheus can scrape it.
    metrics_host: str = Field("127.0.0.1", description="the address the engine's and runners' /metrics bind")

    @field_validator("pipeline_dirs", mode="before")
    @classmethod
    def _split_path_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [Path(part) for part in value.split(os.pathsep) if part]
        return value
