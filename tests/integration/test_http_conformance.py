"""HTTP conformance: schemathesis runs over the live OpenAPI document of the API and fails on any 5xx, or
any response whose status, media type, headers or body the document does not describe, and on a 405
without `Allow`.

The API process runs alone against a real Redis and a real broker (the session's, from conftest): every
REST answer comes from the API process, and the engine and runners would only move jobs along, which
costs minutes of Ray and Triton start-up on a 2-core machine and adds no response shape. The fixture
pipelines give the document its submit variants; a job with an uploaded audio input gives the artifact
download a real artifact. The API requires keys (its default mode); schemathesis sends a valid one with
every request, so that it reaches every operation's own answers (the 401s are tested in test_tenancy)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from api_alone import running_api

from shared.media import encode_wav
from shared.settings import RedisSettings
from shared.tenants import Tenants

pytestmark = pytest.mark.integration

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",  # undeclared methods get 405 with Allow
    "allow_header_conformance",
]
MAX_EXAMPLES = 25
SEED = 20260415
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def api_url(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_api(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("api"), "keys") as api:
        yield api.http


@pytest.fixture(scope="module")
def authorization(redis_url: str) -> str:
    """An Authorization header value with a key of a tenant of this module's own."""
    tenants = Tenants(RedisSettings(url=redis_url))
    tenant = f"conformance-{uuid.uuid4().hex[:8]}"
    # Schemathesis submits hundreds of jobs that no engine finishes.
    tenants.set_limits(tenant, concurrent_jobs=1_000_000, submits_per_minute=1_000_000)
    _, key = tenants.create_key(tenant, "schemathesis")
    tenants.close()
    return f"Bearer {key}"


@pytest.fixture(scope="module")
def uploaded_audio(api_url: str, authorization: str) -> dict[str, str]:
    """Path parameters of a stored artifact: the audio input of a job submitted as multipart."""
    t = np.arange(16000) / 16000
    wav = encode_wav((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    response = httpx.post(
        f"{api_url}/v1/jobs",
        data={"request": json.dumps({"pipeline": "fixture-two-stage", "inputs": {}})},
        files={"audio": ("tone.wav", wav, "audio/wav")},
        headers={"Authorization": authorization},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return {"path.job_id": response.json()["job_id"], "path.stage": "_inputs", "path.path": "audio"}


def test_the_api_answers_as_its_openapi_document_says(
    api_url: str, authorization: str, uploaded_audio: dict[str, str], tmp_path: Path
) -> None:
    # The download is pinned to a real artifact (random ids would only ever find 404s); the other job
    # operations get real ids in the stateful phase, which follows each submit's Location header.
    pinned = "".join(f"{json.dumps(key)} = {json.dumps(value)}\n" for key, value in uploaded_audio.items())
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        '[[operations]]\ninclude-name = "GET /v1/jobs/{job_id}/artifacts/{stage}/{path}"\n'
        f"[operations.parameters]\n{pinned}"
    )
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color"),
        *("run", f"{api_url}/openapi.json", "--checks", ",".join(CHECKS)),
        *("--header", f"Authorization: {authorization}"),
        *("--phases", "examples,coverage,fuzzing,stateful"),
        *("--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--no-shrink"),
        *("--generation-database", "none", "--workers", "1", "--request-timeout", "10"),
    ]
    # In tmp_path: nothing the run writes lands in the checkout.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    document = httpx.get(f"{api_url}/openapi.json").json()
    operations = sum(len(path_item) for path_item in document["paths"].values())
    assert f"Tested: {operations}\n" in report, report  # none skipped
