"""Settings shared by every service: one pydantic-settings object per process, env prefix ORATE_.

Nested blocks use a double underscore: ORATE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:19092.
Nothing here is read at import time; a process builds its settings once in its entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:29092"
    # A managed Kafka (MSK, Confluent, Strimzi with auth): librdkafka's security settings. Empty: plaintext.
    security_protocol: Literal["", "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = ""
    sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = ""
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    topic_prefix: str = "orate"
    partitions: int = Field(6, ge=1, description="partitions for topics the platform creates")
    # Kafka holds an empty fetch until a record arrives or this passes; noida-db (the embedded broker)
    # ignores it and answers at once, which idle_fetch_interval_ms makes up for.
    fetch_wait_max_ms: int = 5
    idle_fetch_interval_ms: int = Field(
        0,
        ge=0,
        description="a consumer whose fetch found nothing pauses its partitions this long (0: never, "
        "right for Kafka; the embedded stack sets it for noida-db)",
    )
    idle_fetch_window_ms: int = Field(2, ge=1, description="how long a resumed consumer waits for records")
    delete_committed: bool = Field(
        False,
        description="consumers delete the records their group has committed past (DeleteRecords), at "
        "most every delete_interval_s: only for topics no other group reads (the embedded stack sets "
        "it for its engine and runners, the only readers of the jobs and work topics)",
    )
    delete_interval_s: float = Field(5.0, gt=0)
    # noida-db refuses a group join with less (as Kafka does with its default group.min.session.timeout.ms).
    session_timeout_ms: int = Field(6000, ge=6000)
    heartbeat_interval_ms: int = 1000
    group_instance_id: str = Field(
        "",
        description="static group membership (group.instance.id), unique within the consumer's group: a "
        "restarted member takes its partitions back at once. The embedded stack sets it per component, since "
        "noida-db never completes a rebalance after a member dies without leaving; empty: dynamic",
    )
    commit_every: int = Field(20, ge=1, description="commit offsets after this many processed messages")
    commit_interval_ms: int = Field(50, ge=1, description="... or after this long, whichever comes first")


class RedisSettings(BaseModel):
    url: str = "redis://127.0.0.1:29379/0"
    job_ttl_s: int = 7 * 24 * 3600
    idempotency_ttl_s: int = 24 * 3600


class ArtifactSettings(BaseModel):
    backend: Literal["filesystem", "s3"] = "filesystem"
    root: Path = Path(".run/artifacts")
    s3_bucket: str = "orate-artifacts"
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"


class ModelEndpoints(BaseModel):
    """Where the stage runners reach the model deployments."""

    ray_serve_url: str = "http://127.0.0.1:29400"
    ray_address: str = Field(
        "",
        description="Ray cluster (GCS host:port). Set: Ray Serve deployments are called through "
        "DeploymentHandles, as a Ray driver (no HTTP proxy hop); empty: over Serve's HTTP proxy",
    )
    ray_auth_token: SecretStr = Field(
        SecretStr(""), description="the cluster's RAY_AUTH_TOKEN, if it uses one"
    )
    triton_grpc_url: str = "127.0.0.1:29501"
    services: dict[str, str] = Field(
        default_factory=dict,
        description="per-service address, overriding the backend-wide one: service -> Triton gRPC host:port "
        "or Ray Serve HTTP URL, by the service's backend. On a cluster each model is its own Service "
        '(ORATE_ENDPOINTS__SERVICES=\'{"asr-sactc": "orate-asr-sactc-triton:8001"}\')',
    )

    def triton_url_for(self, service: str) -> str:
        return self.services.get(service, self.triton_grpc_url)

    def ray_serve_url_for(self, service: str) -> str:
        return self.services.get(service, self.ray_serve_url)


class OrateSettings(BaseSettings):
    """Settings common to all Orate processes; services subclass it to add their own block."""

    model_config = SettingsConfigDict(env_prefix="ORATE_", env_nested_delimiter="__", extra="ignore")

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    artifacts: ArtifactSettings = ArtifactSettings()
    endpoints: ModelEndpoints = ModelEndpoints()
    log_level: str = "INFO"
