"""Artifact store: blobs by key on a filesystem (embedded stack) or an S3-API bucket (clusters)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from orate.v1 import common_pb2

from shared.settings import ArtifactSettings

OCTET_STREAM = "application/octet-stream"


class ArtifactNotFound(KeyError):
    pass


class ArtifactStore(ABC):
    @abstractmethod
    def put(self, key: str, data: bytes, media_type: str = OCTET_STREAM) -> common_pb2.ArtifactRef:
        """Store data under key (overwrites: keys are deterministic, so a retried write is harmless)."""

    @abstractmethod
    def get(self, ref: common_pb2.ArtifactRef | str) -> bytes:
        """The bytes of an artifact, by reference or URI; ArtifactNotFound if missing."""

    @abstractmethod
    def exists(self, ref: common_pb2.ArtifactRef | str) -> bool: ...


def job_artifact_key(job_id: str, stage: str, name: str) -> str:
    """The key of a stage's output (stage '_inputs' holds a job's uploaded inputs)."""
    return _checked_key(f"jobs/{job_id}/{stage}/{name}")


def _checked_key(key: str) -> str:
    # Keys become file paths: refuse anything that could leave the store's root.
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\\" in key:
        raise ValueError(f"invalid artifact key {key!r}")
    return key


def _uri(ref: common_pb2.ArtifactRef | str) -> str:
    return ref if isinstance(ref, str) else ref.uri


def _make_ref(uri: str, data: bytes, media_type: str) -> common_pb2.ArtifactRef:
    return common_pb2.ArtifactRef(
        uri=uri, media_type=media_type, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


class FilesystemArtifactStore(ArtifactStore):
    """Files under a root directory, addressed by file:// URIs; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path_of_key(self, key: str) -> Path:
        return self.root.joinpath(*PurePosixPath(_checked_key(key)).parts)

    def _path_of_uri(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ValueError(f"not a file:// artifact URI: {uri!r}")
        path = Path(unquote(parsed.path))
        if not path.is_relative_to(self.root) or ".." in path.parts:
            raise ValueError(f"artifact URI {uri!r} is outside the store root {self.root}")
        return path

    def put(self, key: str, data: bytes, media_type: str = OCTET_STREAM) -> common_pb2.ArtifactRef:
        path = self._path_of_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Readers see the old file or the whole new one, never a partial write. No fsync: a retried
        # stage rewrites its artifacts, so surviving a power cut is not worth the latency.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return _make_ref(path.as_uri(), data, media_type)

    def get(self, ref: common_pb2.ArtifactRef | str) -> bytes:
        path = self._path_of_uri(_uri(ref))
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ArtifactNotFound(_uri(ref)) from exc

    def exists(self, ref: common_pb2.ArtifactRef | str) -> bool:
        return self._path_of_uri(_uri(ref)).is_file()


class S3ArtifactStore(ArtifactStore):
    """Objects in an S3-API bucket (AWS, MinIO, moto), addressed by s3://bucket/key URIs."""

    def __init__(self, settings: ArtifactSettings, client: Any = None) -> None:
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        if client is None:
            # Imported here: boto3 is the optional `artifacts-s3` extra.
            import boto3
            from botocore.config import Config

            retries = {"max_attempts": 3, "mode": "standard"}
            config = Config(connect_timeout=5, read_timeout=60, retries=retries)
            client = boto3.client(
                "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region, config=config
            )
        self._client = client

    def _object_key(self, key: str) -> str:
        key = _checked_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _location(uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        key = unquote(parsed.path.lstrip("/"))
        if parsed.scheme != "s3" or not parsed.netloc or not key:
            raise ValueError(f"not an s3://bucket/key artifact URI: {uri!r}")
        return parsed.netloc, key

    def put(self, key: str, data: bytes, media_type: str = OCTET_STREAM) -> common_pb2.ArtifactRef:
        object_key = self._object_key(key)
        self._client.put_object(Bucket=self.bucket, Key=object_key, Body=data, ContentType=media_type)
        return _make_ref(f"s3://{self.bucket}/{object_key}", data, media_type)

    def get(self, ref: common_pb2.ArtifactRef | str) -> bytes:
        bucket, key = self._location(_uri(ref))
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
        except self._client.exceptions.NoSuchKey as exc:
            raise ArtifactNotFound(_uri(ref)) from exc
        return response["Body"].read()

    def exists(self, ref: common_pb2.ArtifactRef | str) -> bool:
        bucket, key = self._location(_uri(ref))
        try:
            self._client.head_object(Bucket=bucket, Key=key)
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


def artifact_store(settings: ArtifactSettings) -> ArtifactStore:
    """The store the settings select (filesystem or s3)."""
    if settings.backend == "s3":
        return S3ArtifactStore(settings)
    return FilesystemArtifactStore(settings.root)
