"""Artifact store: blobs by key on a filesystem (embedded stack) or an S3-API bucket (clusters)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from orate.v1 import common_pb2

from shared.settings import ArtifactSettings


class ArtifactNotFound(KeyError):
    pass


class ArtifactStore(ABC):
    @abstractmethod
    def put(self, key: str, data: bytes, media_type: str = "application/octet-stream") -> common_pb2.ArtifactRef:
        """Store data under key (overwrites: keys are deterministic, so a retried write is harmless)."""

    @abstractmethod
    def get(self, ref: common_pb2.ArtifactRef | str) -> bytes:
        """The bytes of an artifact, by reference or URI; ArtifactNotFound if missing."""

    @abstractmethod
    def exists(self, ref: common_pb2.ArtifactRef | str) -> bool: ...


def job_artifact_key(job_id: str, stage: str, name: str) -> str:
    """The key of a stage's output (stage '_inputs' holds a job's uploaded inputs)."""


def artifact_store(settings: ArtifactSettings) -> ArtifactStore:
    """The store the settings select (filesystem or s3)."""
