"""The REST API against in-memory bus, store and tenants: validation errors, idempotency, multipart, reading
jobs, API keys, tenant isolation, quotas and the job listing."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from orate.v1 import common_pb2, jobs_pb2
from orchestrator.api import create_app
from orchestrator.jobs import JobService
from orchestrator.settings import ApiSettings
from orchestrator_fakes import (
    TALK,
    TRANSCRIBE,
    Clock,
    FakeProducer,
    FakeStore,
    FakeTenants,
    MemoryArtifacts,
    make_pipelines,
)

from shared import events
from shared.bus import Topics
from shared.media import encode_wav

TOPICS = Topics("t")
MAX_BODY = 400_000


def wav(seconds: float = 1.0) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return encode_wav((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)


def media(data: bytes, media_type: str = "audio/wav") -> dict[str, str]:
    return {"base64": base64.b64encode(data).decode(), "media_type": media_type}


class Api:
    """The app in keys mode (or open), and `client`, which sends the key of tenant acme."""

    def __init__(
        self,
        producer: FakeProducer,
        store: FakeStore,
        artifacts: MemoryArtifacts,
        tenants: FakeTenants,
        clock: Clock,
        auth: str = "keys",
    ) -> None:
        self.producer, self.store, self.artifacts, self.tenants, self.clock = (
            producer,
            store,
            artifacts,
            tenants,
            clock,
        )
        self.ready = {"redis": True, "broker": True}
        settings = ApiSettings(max_body_bytes=MAX_BODY, events_idle_timeout_s=1, auth=auth)
        pipelines = make_pipelines(TRANSCRIBE, TALK)
        service = JobService(pipelines, store, producer, artifacts, TOPICS, settings, tenants, clock)
        checks = {name: (lambda name=name: self.ready[name]) for name in self.ready}
        self.app = create_app(service, settings, checks)
        self.client = self.client_for("acme")

    def client_for(self, tenant: str) -> TestClient:
        return TestClient(self.app, headers={"Authorization": f"Bearer {self.tenants.key_for(tenant)}"})

    def submitted(self) -> list[jobs_pb2.JobCommand]:
        return [jobs_pb2.JobCommand.FromString(r.value) for r in self.producer.sent if r.topic == TOPICS.jobs]


@pytest.fixture
def api(
    producer: FakeProducer, store: FakeStore, artifacts: MemoryArtifacts, tenants: FakeTenants, clock: Clock
) -> Api:
    return Api(producer, store, artifacts, tenants, clock)


def keyed(tenants: FakeTenants, app) -> TestClient:
    return TestClient(app, headers={"X-API-Key": tenants.key_for("acme")})


def error_of(response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]


def test_json_submit_queues_the_job_and_answers_202(api: Api) -> None:
    response = api.client.post("/v1/jobs", json={"pipeline": "transcribe", "inputs": {"audio": media(wav())}})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["pipeline"] == "transcribe"
    assert response.headers["location"] == f"/v1/jobs/{job['job_id']}"
    assert job["stages"]["asr"]["status"] == "pending"
    link = job["inputs"]["audio"]["artifact"]
    assert link["url"] == f"/v1/jobs/{job['job_id']}/artifacts/_inputs/audio"
    assert link["media_type"] == "audio/wav"
    (command,) = api.submitted()
    assert command.submit.job.job_id == job["job_id"]
    assert command.submit.job.status == jobs_pb2.JOB_STATUS_QUEUED
    assert command.submit.job.tenant == job["tenant"] == "acme"
    assert api.tenants.admitted == [("acme", job["job_id"], len(wav()))]  # uploads count to bytes per day
    assert api.store.get_job(job["job_id"]) == command.submit.job
    assert api.client.get(link["url"]).content == wav()


def test_multipart_submit_takes_media_as_file_parts(api: Api) -> None:
    response = api.client.post(
        "/v1/jobs",
        data={"request": json.dumps({"pipeline": "transcribe", "inputs": {"beam": 8}})},
        files={"audio": ("a.wav", wav(), "audio/wav")},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["inputs"]["beam"] == 8
    assert api.client.get(job["inputs"]["audio"]["artifact"]["url"]).content == wav()


ERRORS = {
    "malformed JSON": (b'{"pipeline": "transcribe", ', 400, "malformed_request", "malformed JSON"),
    "not an object": (b"[1, 2]", 400, "malformed_request", "expected"),
    # These answered 500: a decoding error, and text or numbers that protobuf Values cannot hold.
    "not UTF-8": (b'{"pipeline": "\xff"}', 400, "malformed_request", "malformed JSON"),
    "lone surrogate": (
        b'{"pipeline": "talk", "inputs": {"text": "\\ud800"}}',
        400,
        "malformed_request",
        "lone UTF-16 surrogate",
    ),
    "NaN": (b'{"pipeline": "talk", "inputs": {"samples": NaN}}', 400, "malformed_request", "finite"),
    "number beyond a double": (
        b'{"pipeline": "talk", "inputs": {"samples": 1' + b"0" * 400 + b"}}",
        400,
        "malformed_request",
        "finite",
    ),
    "unknown pipeline": ({"pipeline": "nope"}, 404, "unknown_pipeline", "'nope'"),
    "missing input": ({"pipeline": "transcribe"}, 422, "invalid_input", "missing required input 'audio'"),
    "unknown input": (
        {"pipeline": "transcribe", "inputs": {"audio": media(wav()), "lang": "en"}},
        422,
        "invalid_input",
        "unknown input 'lang'",
    ),
    "mistyped input": (
        {"pipeline": "transcribe", "inputs": {"audio": media(wav()), "beam": "four"}},
        422,
        "invalid_input",
        "input 'beam': expected a number",
    ),
    "undecodable audio": (
        {"pipeline": "transcribe", "inputs": {"audio": media(b"definitely not audio")}},
        422,
        "invalid_input",
        "input 'audio': not an audio file",
    ),
    "audio too long": (
        {"pipeline": "transcribe", "inputs": {"audio": media(wav(6.0))}},
        422,
        "invalid_input",
        "input 'audio'",
    ),
    "bad base64": (
        {"pipeline": "transcribe", "inputs": {"audio": {"base64": "%%%"}}},
        422,
        "invalid_input",
        "invalid base64",
    ),
    "audio as plain text": (
        {"pipeline": "transcribe", "inputs": {"audio": "hello"}},
        422,
        "invalid_input",
        "expected a file part",
    ),
    "text too long": (
        {"pipeline": "talk", "inputs": {"text": "x" * 201}},
        422,
        "invalid_input",
        "input 'text': 201 characters, more than the maximum 200",
    ),
    "unknown voice": (
        {"pipeline": "talk", "inputs": {"text": "hi", "voice": "nobody:nothing"}},
        422,
        "invalid_input",
        "input 'voice': unknown voice 'nobody:nothing' is not one of flite-kal, flite-slt",
    ),
}


@pytest.mark.parametrize(("body", "status", "code", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_bad_submits_get_a_4xx_with_a_reason(
    api: Api, body: object, status: int, code: str, message: str
) -> None:
    if isinstance(body, bytes):
        response = api.client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    else:
        response = api.client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code
    assert message in error["message"]
    assert api.submitted() == []


def test_oversized_body_is_413_by_content_length(api: Api) -> None:
    body = json.dumps({"pipeline": "transcribe", "inputs": {"audio": media(b"x" * MAX_BODY)}})
    response = api.client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_oversized_body_is_413_while_reading_a_chunked_upload(api: Api) -> None:
    def chunks():
        yield b'{"pipeline": "transcribe", "inputs": {"audio": {"base64": "'
        for _ in range(MAX_BODY // 10_000 + 1):
            yield b"A" * 10_000
        yield b'"}}}'

    response = api.client.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_unsupported_content_type_is_415(api: Api) -> None:
    response = api.client.post("/v1/jobs", content=b"pipeline=x", headers={"content-type": "text/plain"})
    assert response.status_code == 415


def test_idempotency_key_returns_the_same_job(api: Api) -> None:
    body = {"pipeline": "transcribe", "inputs": {"audio": media(wav())}}
    first = api.client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "abc"})
    second = api.client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "abc"})
    other = api.client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "xyz"})
    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"] != other.json()["job_id"]
    assert len(api.submitted()) == 2


def test_a_submit_whose_key_is_still_claimed_is_409_with_retry_after(api: Api) -> None:
    api.store.keys["acme:k"] = "first-job"  # claimed by a submit that has not stored its job yet
    response = api.client.post(
        "/v1/jobs", json={"pipeline": "talk", "inputs": {"text": "hi"}}, headers={"Idempotency-Key": "k"}
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "submit_in_progress"
    assert response.headers["retry-after"] == "1"


def test_broker_unavailable_is_503_and_frees_the_idempotency_key(api: Api) -> None:
    body = {"pipeline": "transcribe", "inputs": {"audio": media(wav())}}
    api.producer.fail_next_flush = True
    response = api.client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k"})
    assert response.status_code == 503
    assert error_of(response)["code"] == "broker_unavailable"
    assert response.headers["retry-after"] == "5"
    retry = api.client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 202
    assert retry.json()["job_id"] == api.store.keys["acme:k"]


def test_get_job_shows_stage_timings_outputs_and_artifact_links(api: Api) -> None:
    job_id = api.client.post("/v1/jobs", json={"pipeline": "talk", "inputs": {"text": "hi"}}).json()["job_id"]
    job = api.store.get_job(job_id)
    job.status = jobs_pb2.JOB_STATUS_SUCCEEDED
    state = job.stages["animate"]
    state.status, state.dispatched_unix_ms, state.finished_unix_ms = (
        jobs_pb2.STAGE_STATUS_SUCCEEDED,
        1000,
        1250,
    )
    ref = api.artifacts.put(f"jobs/{job_id}/animate/samples.0.data_f32", b"\0" * 8)
    state.outputs["samples.0.data_f32"].artifact.CopyFrom(ref)
    job.outputs["motion"].artifact.CopyFrom(ref)
    job.outputs["frames"].number = 2
    api.store.put_job(job)
    view = api.client.get(f"/v1/jobs/{job_id}").json()
    assert view["status"] == "succeeded"
    assert view["stages"]["animate"]["duration_ms"] == 250
    url = f"/v1/jobs/{job_id}/artifacts/animate/samples.0.data_f32"
    assert view["outputs"]["motion"]["artifact"]["url"] == url
    assert view["outputs"]["frames"] == 2
    download = api.client.get(url)
    assert download.content == b"\0" * 8
    assert download.headers["content-type"] == "application/octet-stream"
    assert api.client.get(f"/v1/jobs/{job_id}/artifacts/animate/nothing").status_code == 404


def test_redis_unavailable_is_503_with_retry_after(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(job_id: str) -> None:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(api.store, "get_job", unreachable)
    response = api.client.get("/v1/jobs/some-id")
    assert response.status_code == 503
    assert error_of(response)["code"] == "store_unavailable"
    assert response.headers["retry-after"] == "5"


def test_unexpected_errors_are_500_error_bodies(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(job_id: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api.store, "get_job", broken)
    client = TestClient(api.app, raise_server_exceptions=False, headers=api.client.headers)
    response = client.get("/v1/jobs/some-id")
    assert response.status_code == 500
    assert error_of(response)["code"] == "internal"


def test_unknown_job_is_404_everywhere(api: Api) -> None:
    for method, path in [
        ("GET", "/v1/jobs/nope"),
        ("GET", "/v1/jobs/nope/events"),
        ("POST", "/v1/jobs/nope:cancel"),
        ("GET", "/v1/jobs/nope/artifacts/_inputs/audio"),
    ]:
        response = api.client.request(method, path)
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "not_found"


METHOD_NOT_ALLOWED = {
    "DELETE a job": ("DELETE", "/v1/jobs/x", "GET"),
    # Two routes share the template: Allow names the methods of both.
    "DELETE the jobs": ("DELETE", "/v1/jobs", "GET, POST"),
    "PUT a cancel": ("PUT", "/v1/jobs/x:cancel", "POST"),
    "GET the cancel alias": ("GET", "/v1/jobs/x/cancel", "POST"),
    "POST the pipelines": ("POST", "/v1/pipelines", "GET"),
    "OPTIONS readiness": ("OPTIONS", "/readyz", "GET"),
}


@pytest.mark.parametrize(
    ("method", "path", "allow"), METHOD_NOT_ALLOWED.values(), ids=METHOD_NOT_ALLOWED.keys()
)
def test_a_method_the_route_lacks_is_405_with_allow(api: Api, method: str, path: str, allow: str) -> None:
    response = api.client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert error_of(response)["code"] == "method_not_allowed"


def test_unknown_paths_are_404_error_bodies(api: Api) -> None:
    for path in ["/v2/jobs", "/v1/jobs/", "/healthz/"]:  # no trailing-slash redirects either
        response = api.client.get(path, follow_redirects=False)
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "not_found"
    # The job route's template matches a cancel URL too: a GET there reads (no) job.
    assert error_of(api.client.get("/v1/jobs/x:cancel"))["message"] == "no job 'x:cancel'"


@pytest.mark.parametrize("path", ["/v1/jobs/{id}:cancel", "/v1/jobs/{id}/cancel"])
def test_cancel_sends_a_cancel_command(api: Api, path: str) -> None:
    job_id = api.client.post("/v1/jobs", json={"pipeline": "talk", "inputs": {"text": "hi"}}).json()["job_id"]
    response = api.client.post(path.format(id=job_id))
    assert response.status_code == 202
    cancel = api.submitted()[-1]
    assert cancel.WhichOneof("command") == "cancel" and cancel.cancel.job_id == job_id


def test_events_stream_history_as_server_sent_events(api: Api) -> None:
    job_id = api.client.post("/v1/jobs", json={"pipeline": "talk", "inputs": {"text": "hi"}}).json()["job_id"]
    for kind in (events.JOB_ACCEPTED, events.JOB_COMPLETED):
        event = jobs_pb2.JobEvent(job_id=job_id, type=kind, time_unix_ms=5)
        api.store.write([], [(job_id, events.to_cloudevent(event))])
    response = api.client.get(f"/v1/jobs/{job_id}/events")
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [block for block in response.text.split("\n\n") if block]
    assert [block.splitlines()[1] for block in blocks] == [
        f"event: {events.JOB_ACCEPTED}",
        f"event: {events.JOB_COMPLETED}",
    ]
    assert blocks[0].splitlines()[0] == f"id: {job_id}:{events.JOB_ACCEPTED}::0"
    data = json.loads(blocks[1].splitlines()[2].removeprefix("data: "))
    assert data["data"]["type"] == events.JOB_COMPLETED


def test_pipelines_openapi_health_and_readiness(api: Api) -> None:
    pipelines = api.client.get("/v1/pipelines").json()
    assert [p["name"] for p in pipelines] == ["talk", "transcribe"]
    assert pipelines[0]["stages"][1] == {"name": "animate", "service": "face", "needs": ["speak"]}
    document = api.client.get("/openapi.json").json()
    submit = document["paths"]["/v1/jobs"]["post"]
    assert set(submit["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "/v1/jobs/{job_id}:cancel" in document["paths"]
    assert api.client.get("/healthz").status_code == 200
    assert api.client.get("/readyz").status_code == 200
    api.ready["broker"] = False
    not_ready = api.client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["checks"] == {"redis": True, "broker": False}


def test_openapi_document_describes_bodies_headers_and_statuses(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    paths = document["paths"]
    submit = paths["/v1/jobs"]["post"]
    assert submit["responses"]["202"]["headers"]["Location"]["required"] is True
    assert set(submit["responses"]) == {"202", "400", "401", "404", "409", "413", "415", "422", "429", "503"}
    variants = {
        v["title"]: v for v in submit["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    }
    assert set(variants) == {"talk", "transcribe"}
    transcribe = variants["transcribe"]["properties"]["inputs"]
    assert transcribe["required"] == ["audio"] and transcribe["additionalProperties"] is False
    assert transcribe["properties"]["audio"]["required"] == ["base64"]
    assert transcribe["properties"]["beam"] == {"type": "number", "default": 4}
    talk = variants["talk"]["properties"]["inputs"]
    assert talk["required"] == ["text"]
    assert talk["properties"]["text"] == {"type": "string", "minLength": 1, "maxLength": 200}
    assert talk["properties"]["voice"]["enum"] == ["flite-kal", "flite-slt"]
    multipart = submit["requestBody"]["content"]["multipart/form-data"]
    assert multipart["encoding"] == {"request": {"contentType": "application/json"}}
    assert multipart["schema"]["properties"]["audio"] == {
        "type": "string",
        "format": "binary",
        "description": "a media input",
    }
    request_part = {v["title"]: v for v in multipart["schema"]["properties"]["request"]["oneOf"]}
    assert "required" not in request_part["transcribe"]["properties"]["inputs"]  # audio may be a file part
    # What each operation answers, and nothing FastAPI adds on its own (a 422 for every path parameter).
    assert set(paths["/v1/jobs/{job_id}"]["get"]["responses"]) == {"200", "401", "404", "503"}
    assert "HTTPValidationError" not in json.dumps(document)
    events = paths["/v1/jobs/{job_id}/events"]["get"]["responses"]
    assert set(events["200"]["content"]) == {"text/event-stream"}
    assert set(events["404"]["content"]) == {"application/json"}
    artifact = paths["/v1/jobs/{job_id}/artifacts/{stage}/{path}"]["get"]["responses"]
    assert set(artifact["200"]["content"]) == {"*/*"}
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert "/v1/jobs/{job_id}/cancel" in paths and "/metrics" in paths
    # Every 503 but the readiness probe's (which answers with its checks) is an ErrorBody with Retry-After.
    unavailable = [
        operation["responses"]["503"]
        for path, path_item in paths.items()
        for operation in path_item.values()
        if "503" in operation["responses"] and path != "/readyz"
    ]
    assert len(unavailable) == 8
    for response in unavailable:
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
        assert response["headers"]["Retry-After"]["required"] is True


def test_metrics_count_requests_by_route_template(api: Api) -> None:
    api.client.get("/v1/jobs/some-id")
    text = api.client.get("/metrics").text
    assert 'orate_api_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"}' in text


def test_value_kinds_survive_the_view(api: Api) -> None:
    body = {"pipeline": "talk", "inputs": {"text": "hi", "samples": 3}}
    job = api.client.post("/v1/jobs", json=body).json()
    assert job["inputs"] == {"text": "hi", "samples": 3}
    stored = api.store.get_job(job["job_id"])
    assert stored.inputs["samples"] == common_pb2.Value(number=3)


class BlockedModels:
    """Direct model calls that hold their thread until released, like a long model run."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0
        self._lock = threading.Lock()

    def views(self) -> list:
        return []

    def predict(self, service: str, body: dict, timeout_s: float) -> dict:
        with self._lock:
            self.started += 1
        self.release.wait(30)
        return {"service": service}


def test_direct_model_call_timeouts_must_be_finite_and_bounded(
    producer: FakeProducer, store: FakeStore, artifacts: MemoryArtifacts, tenants: FakeTenants
) -> None:
    settings = ApiSettings()
    service = JobService(make_pipelines(TALK), store, producer, artifacts, TOPICS, settings, tenants)
    models = BlockedModels()
    models.release.set()
    client = keyed(tenants, create_app(service, settings, {}, models))
    for timeout_s in ["0", "-1", "601", "nan", "inf"]:
        response = client.post(f"/v1/models/m:predict?timeout_s={timeout_s}", json={})
        assert response.status_code == 422, timeout_s
        assert error_of(response)["code"] == "invalid_request"
    assert client.post("/v1/models/m:predict?timeout_s=600", json={}).json() == {"service": "m"}


def test_slow_direct_model_calls_leave_the_job_endpoints_answering(
    producer: FakeProducer, store: FakeStore, artifacts: MemoryArtifacts, tenants: FakeTenants
) -> None:
    settings = ApiSettings(direct_calls_in_flight=8)
    service = JobService(make_pipelines(TALK), store, producer, artifacts, TOPICS, settings, tenants)
    models = BlockedModels()
    calls = 48  # more than the 40 threads the job endpoints share
    with (
        keyed(tenants, create_app(service, settings, {}, models)) as client,
        ThreadPoolExecutor(calls + 1) as pool,
    ):
        job_id = client.post("/v1/jobs", json={"pipeline": "talk", "inputs": {"text": "hi"}}).json()["job_id"]
        predictions = [pool.submit(client.post, "/v1/models/m:predict", json={}) for _ in range(calls)]
        try:
            deadline = time.monotonic() + 10
            while models.started < settings.direct_calls_in_flight and time.monotonic() < deadline:
                time.sleep(0.01)
            read = pool.submit(client.get, f"/v1/jobs/{job_id}")
            assert read.result(timeout=10).json()["job_id"] == job_id
            assert models.started == settings.direct_calls_in_flight  # the rest wait, holding no thread
        finally:
            models.release.set()
        assert [p.result(timeout=30).json() for p in predictions] == [{"service": "m"}] * calls


# ---- API keys, tenants, quotas, listing --------------------------------------------------------------

V1_OPERATIONS = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/some-id"),
    ("GET", "/v1/jobs/some-id/events"),
    ("POST", "/v1/jobs/some-id:cancel"),
    ("POST", "/v1/jobs/some-id/cancel"),
    ("GET", "/v1/jobs/some-id/artifacts/_inputs/audio"),
    ("GET", "/v1/pipelines"),
]


def test_every_v1_operation_needs_a_valid_key(api: Api) -> None:
    anonymous = TestClient(api.app)
    unknown = TestClient(api.app, headers={"Authorization": "Bearer ork_0123456789abcdef_" + "x" * 43})
    basic = TestClient(api.app, headers={"Authorization": "Basic YWNtZTpzZWNyZXQ="})
    for method, path in V1_OPERATIONS:
        response = anonymous.request(method, path, json={"pipeline": "talk", "inputs": {"text": "hi"}})
        assert response.status_code == 401, (method, path)
        assert error_of(response)["code"] == "unauthenticated"
        assert response.headers["www-authenticate"] == 'Bearer realm="orate"'
        for client in (unknown, basic):
            refused = client.request(method, path)
            assert refused.status_code == 401, (method, path)
            assert refused.headers["www-authenticate"] == 'Bearer realm="orate", error="invalid_token"'
    assert api.submitted() == [] and api.tenants.admitted == []
    # Probes and metrics stay open.
    assert anonymous.get("/healthz").status_code == anonymous.get("/readyz").status_code == 200


def test_a_key_works_in_x_api_key_too_and_a_removed_key_stops_working(api: Api) -> None:
    key = api.tenants.key_for("acme")
    client = TestClient(api.app, headers={"X-API-Key": key})
    assert client.get("/v1/pipelines").status_code == 200
    del api.tenants.keys[key]  # what revocation does to the lookup
    assert client.get("/v1/pipelines").status_code == 401


def test_open_mode_acts_as_dev_without_a_key_but_refuses_a_bad_one(
    producer: FakeProducer, store: FakeStore, artifacts: MemoryArtifacts, tenants: FakeTenants, clock: Clock
) -> None:
    api = Api(producer, store, artifacts, tenants, clock, auth="open")
    anonymous = TestClient(api.app)
    body = {"pipeline": "talk", "inputs": {"text": "hi"}}
    job = anonymous.post("/v1/jobs", json=body).json()
    assert job["tenant"] == "dev"
    assert api.client.post("/v1/jobs", json=body).json()["tenant"] == "acme"
    assert api.client.get(f"/v1/jobs/{job['job_id']}").status_code == 404  # a key is its own tenant
    bad = TestClient(api.app, headers={"Authorization": "Bearer nonsense"})
    assert bad.get("/v1/pipelines").status_code == 401
    security = api.client.get("/openapi.json").json()["paths"]["/v1/jobs"]["get"]["security"]
    assert {} in security  # the document says a key is optional


def test_another_tenants_job_is_404_everywhere_as_a_job_that_does_not_exist(api: Api) -> None:
    job = api.client.post(
        "/v1/jobs", json={"pipeline": "transcribe", "inputs": {"audio": media(wav())}}
    ).json()
    job_id = job["job_id"]
    api.store.write(
        [], [(job_id, events.to_cloudevent(jobs_pb2.JobEvent(job_id=job_id, type="orate.job.accepted")))]
    )
    commands = len(api.submitted())
    other = api.client_for("globex")
    for method, path in [
        ("GET", "/v1/jobs/{id}"),
        ("GET", "/v1/jobs/{id}/events"),
        ("POST", "/v1/jobs/{id}:cancel"),
        ("POST", "/v1/jobs/{id}/cancel"),
        ("GET", "/v1/jobs/{id}/artifacts/_inputs/audio"),
    ]:
        theirs = other.request(method, path.format(id=job_id))
        nobodys = other.request(method, path.format(id="f" * 32))
        assert theirs.status_code == nobodys.status_code == 404, path
        assert error_of(theirs) == {"code": "not_found", "message": f"no job {job_id!r}"}
        assert error_of(nobodys)["code"] == "not_found"
    assert len(api.submitted()) == commands  # no cancel went out
    assert other.get("/v1/jobs").json() == {"jobs": [], "next_cursor": None}
    # The owner still reads, follows and downloads it.
    assert api.client.get(f"/v1/jobs/{job_id}").status_code == 200
    assert api.client.get(f"/v1/jobs/{job_id}/artifacts/_inputs/audio").content == wav()


def test_idempotency_keys_are_per_tenant_and_a_replay_is_not_charged(api: Api) -> None:
    body = {"pipeline": "talk", "inputs": {"text": "hi"}}
    first = api.client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k"}).json()
    replay = api.client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k"}).json()
    theirs = api.client_for("globex").post("/v1/jobs", json=body, headers={"Idempotency-Key": "k"}).json()
    assert first["job_id"] == replay["job_id"] != theirs["job_id"]
    assert theirs["tenant"] == "globex"
    assert [tenant for tenant, _, _ in api.tenants.admitted] == ["acme", "globex"]


def test_quota_excess_is_429_with_retry_after_and_queues_nothing(api: Api) -> None:
    api.tenants.concurrent_jobs = 1
    body = {"pipeline": "talk", "inputs": {"text": "hi"}}
    assert api.client.post("/v1/jobs", json=body).status_code == 202
    refused = api.client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "later"})
    assert refused.status_code == 429
    assert error_of(refused)["code"] == "quota_exceeded"
    assert "concurrent jobs" in error_of(refused)["message"]
    assert refused.headers["retry-after"] == "1"
    assert len(api.submitted()) == 1
    assert "acme:later" not in api.store.keys  # the retry may use the same key
    assert api.client_for("globex").post("/v1/jobs", json=body).status_code == 202  # quotas are per tenant
    text = api.client.get("/metrics").text
    assert 'orate_tenant_quota_rejections_total{quota="concurrent_jobs",tenant="acme"}' in text
    assert 'orate_tenant_jobs_submitted_total{pipeline="talk",tenant="globex"}' in text


def test_a_submit_the_broker_does_not_take_is_refunded(api: Api) -> None:
    api.producer.fail_next_flush = True
    response = api.client.post("/v1/jobs", json={"pipeline": "transcribe", "inputs": {"audio": media(wav())}})
    assert response.status_code == 503
    ((tenant, job_id, size),) = api.tenants.released
    assert (tenant, size) == ("acme", len(wav())) and api.tenants.admitted[0][1] == job_id
    assert api.tenants.active["acme"] == set()


def submit_at(api: Api, client: TestClient, unix_s: float, pipeline: str = "talk") -> dict:
    api.clock.now = unix_s
    inputs = {"text": "hi"} if pipeline == "talk" else {"audio": media(wav())}
    response = client.post("/v1/jobs", json={"pipeline": pipeline, "inputs": inputs})
    assert response.status_code == 202, response.text
    return response.json()


def test_jobs_are_listed_newest_first_a_page_at_a_time_with_filters(api: Api) -> None:
    mine = [submit_at(api, api.client, 1000 + i, "talk" if i % 2 else "transcribe") for i in range(5)]
    submit_at(api, api.client_for("globex"), 1003)
    newest_first = [job["job_id"] for job in reversed(mine)]

    pages, cursor = [], None
    while True:
        page = api.client.get(
            "/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        pages.append([job["job_id"] for job in page["jobs"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]

    talk = api.client.get("/v1/jobs", params={"pipeline": "talk"}).json()["jobs"]
    assert [job["job_id"] for job in talk] == [mine[3]["job_id"], mine[1]["job_id"]]
    window = api.client.get("/v1/jobs", params={"created_after": 1_001_000, "created_before": 1_003_000})
    assert [job["job_id"] for job in window.json()["jobs"]] == [mine[2]["job_id"], mine[1]["job_id"]]
    stored = api.store.get_job(mine[0]["job_id"])
    stored.status = jobs_pb2.JOB_STATUS_SUCCEEDED
    api.store.write([stored], [])
    done = api.client.get("/v1/jobs", params=[("status", "succeeded"), ("status", "failed")]).json()
    assert [job["job_id"] for job in done["jobs"]] == [mine[0]["job_id"]]
    assert done["jobs"][0]["status"] == "succeeded"


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"status": "done"}, {"created_after": -1}, {"cursor": "bm90IGEgY3Vyc29y"}],
    ids=["limit 0", "limit 101", "unknown status", "negative time", "not a cursor"],
)
def test_bad_list_parameters_are_422(api: Api, params: dict) -> None:
    response = api.client.get("/v1/jobs", params=params)
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_request"


def test_openapi_document_describes_keys_401_429_and_the_listing(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"] == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ork_<key id>_<secret>",
            "description": "an API key (`orate keys create`), which names the caller's tenant",
        },
        "apiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "the same API key in a header of its own (Authorization wins when both are sent)",
        },
    }
    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            if not path.startswith("/v1/"):
                assert "security" not in operation and "401" not in operation["responses"], path
                continue
            assert operation["security"] == [{"bearer": []}, {"apiKey": []}], (method, path)
            challenge = operation["responses"]["401"]["headers"]["WWW-Authenticate"]
            assert challenge["required"] is True, (method, path)
            assert ("429" in operation["responses"]) == (method == "post" and path == "/v1/jobs")
    listing = document["paths"]["/v1/jobs"]["get"]
    assert set(listing["responses"]) == {"200", "401", "422", "503"}
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert set(parameters) == {"status", "pipeline", "created_after", "created_before", "limit", "cursor"}
    assert parameters["limit"]["schema"] == {
        "type": "integer",
        "maximum": 100,
        "minimum": 1,
        "default": 20,
        "description": "at most this many jobs",
        "title": "Limit",
    }
    retry_after = document["paths"]["/v1/jobs"]["post"]["responses"]["429"]["headers"]["Retry-After"]
    assert retry_after["required"] is True
