"""Artifact stores: the filesystem backend and the S3-API backend against a real moto server."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from shared.artifacts import (
    ArtifactNotFound,
    ArtifactStore,
    FilesystemArtifactStore,
    S3ArtifactStore,
    artifact_store,
    job_artifact_key,
)
from shared.settings import ArtifactSettings
from shared.stack.config import HOST
from shared.stack.processes import Probe, spawn, wait_healthy
from shared.testing import free_port

pytestmark = pytest.mark.integration

BUCKET = "orate-test"


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    moto_server = Path(sys.executable).parent / "moto_server"
    process = spawn("moto", [str(moto_server), "-H", HOST, "-p", str(port)], tmp_path_factory.mktemp("moto"))
    try:
        wait_healthy(process, Probe("http", HOST, port, "/moto-api/").check, timeout_s=30.0)
        yield f"http://{HOST}:{port}"
    finally:
        process.stop(grace_s=5.0)


@pytest.fixture
def s3_settings(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> ArtifactSettings:
    # moto accepts any credentials; boto3 only needs some to sign requests.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = ArtifactSettings(
        backend="s3", s3_bucket=BUCKET, s3_prefix="run-1", s3_endpoint_url=moto_endpoint
    )
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    return settings


def _round_trip(store: ArtifactStore, uri_prefix: str) -> None:
    data = b"\x00RIFF fake wav \xff" * 100
    key = job_artifact_key("job-1", "asr", "audio.data")
    ref = store.put(key, data, media_type="audio/wav")

    assert ref.uri.startswith(uri_prefix) and ref.uri.endswith("jobs/job-1/asr/audio.data")
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size_bytes == len(data) and ref.media_type == "audio/wav"
    assert store.get(ref) == data
    assert store.get(ref.uri) == data
    assert store.exists(ref)

    # Keys are deterministic: a retried write replaces the artifact.
    again = store.put(key, b"second", media_type="audio/wav")
    assert again.uri == ref.uri and store.get(again) == b"second"

    missing = ref.uri.replace("audio.data", "nothing")
    assert not store.exists(missing)
    with pytest.raises(ArtifactNotFound):
        store.get(missing)


def test_job_artifact_keys_are_paths_and_refuse_traversal() -> None:
    assert job_artifact_key("j", "_inputs", "audio") == "jobs/j/_inputs/audio"
    for bad in ("..", "a/../b", "", "x/"):
        with pytest.raises(ValueError):
            job_artifact_key("j", "s", bad)


def test_filesystem_store(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = artifact_store(ArtifactSettings(backend="filesystem", root=root))
    assert isinstance(store, FilesystemArtifactStore)
    _round_trip(store, root.resolve().as_uri() + "/")
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in (root / "jobs/job-1/asr").iterdir()) == ["audio.data"]
    with pytest.raises(ValueError):
        store.get((tmp_path / "elsewhere").as_uri())


def test_s3_store_against_moto(s3_settings: ArtifactSettings) -> None:
    store = artifact_store(s3_settings)
    assert isinstance(store, S3ArtifactStore)
    _round_trip(store, f"s3://{BUCKET}/run-1/")
    with pytest.raises(ValueError):
        store.get("file:///etc/hostname")
