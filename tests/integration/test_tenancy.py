"""Tenants on a real API process (real Redis and broker, from conftest; no engine: nothing here needs jobs
to move): API keys on REST and gRPC, isolation of one tenant's jobs from another's (a 404 / NOT_FOUND,
never a 403, so that whether a job exists does not leak), quotas (429 / RESOURCE_EXHAUSTED with
Retry-After), the job listing paginated while jobs are being submitted, the open development mode, and
`orate keys`."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from api_alone import Api, running_api
from orate.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc

from shared.media import encode_wav
from shared.settings import RedisSettings
from shared.stack import cli
from shared.stack.control import StackUrls
from shared.tenants import Tenants

pytestmark = pytest.mark.integration

NOOP = {"pipeline": "fixture-noop", "inputs": {}}


@pytest.fixture(scope="module")
def api(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API in its production mode: every request needs a key."""
    with running_api(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("api-keys"), "keys") as started:
        yield started


@pytest.fixture
def tenants(redis_settings: RedisSettings) -> Iterator[Tenants]:
    store = Tenants(redis_settings)
    yield store
    store.close()


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def client(api: Api, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=api.http, headers=headers, timeout=30)


def wav_bytes() -> bytes:
    t = np.arange(16000) / 16000
    return encode_wav((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)


def submit_with_audio(http: httpx.Client) -> dict:
    """A job with an uploaded input, so that it has an artifact to download."""
    response = http.post(
        "/v1/jobs",
        data={"request": json.dumps({"pipeline": "fixture-two-stage", "inputs": {}})},
        files={"audio": ("tone.wav", wav_bytes(), "audio/wav")},
    )
    assert response.status_code == 202, response.text
    return response.json()


def metadata(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


# ---- isolation ----------------------------------------------------------------------------------------


def test_a_tenant_cannot_see_cancel_stream_or_download_another_tenants_job_over_rest(
    api: Api, tenants: Tenants
) -> None:
    owner, other = new_tenant(), new_tenant()
    _, owner_key = tenants.create_key(owner)
    _, other_key = tenants.create_key(other)
    with client(api, owner_key) as mine, client(api, other_key) as theirs:
        job = submit_with_audio(mine)
        job_id, missing = job["job_id"], uuid.uuid4().hex
        assert job["tenant"] == owner
        artifact = job["inputs"]["audio"]["artifact"]["url"]
        for method, path in [
            ("GET", "/v1/jobs/{id}"),
            ("GET", "/v1/jobs/{id}/events"),
            ("POST", "/v1/jobs/{id}:cancel"),
            ("POST", "/v1/jobs/{id}/cancel"),
            ("GET", artifact.replace(job_id, "{id}")),
        ]:
            refused = theirs.request(method, path.format(id=job_id))
            absent = theirs.request(method, path.format(id=missing))
            # Exactly what a job that does not exist gets, but for the id: nothing tells them apart.
            assert refused.status_code == absent.status_code == 404, (path, refused.text)
            assert refused.json() == {"error": {"code": "not_found", "message": f"no job {job_id!r}"}}
            assert absent.json()["error"]["message"] == f"no job {missing!r}"
        assert job_id not in [
            j["job_id"] for j in theirs.get("/v1/jobs", params={"limit": 100}).json()["jobs"]
        ]
        # The owner reads, lists, follows, downloads and cancels it.
        assert mine.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        assert [j["job_id"] for j in mine.get("/v1/jobs").json()["jobs"]] == [job_id]
        assert mine.get(f"/v1/jobs/{job_id}/events").status_code == 200
        assert mine.get(artifact).content == wav_bytes()
        assert mine.post(f"/v1/jobs/{job_id}:cancel").status_code == 202


def test_a_tenant_cannot_see_cancel_stream_or_list_another_tenants_job_over_grpc(
    api: Api, tenants: Tenants
) -> None:
    owner, other = new_tenant(), new_tenant()
    _, owner_key = tenants.create_key(owner)
    _, other_key = tenants.create_key(other)
    with grpc.insecure_channel(api.grpc) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        request = jobs_pb2.SubmitJobRequest(
            pipeline="fixture-noop", inputs={"tag": common_pb2.Value(text="g")}
        )
        job = stub.SubmitJob(request, metadata=metadata(owner_key), timeout=30)
        assert job.tenant == owner
        for call in (
            lambda: stub.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id), metadata=metadata(other_key)),
            lambda: stub.CancelJob(
                jobs_pb2.CancelJobRequest(job_id=job.job_id), metadata=metadata(other_key)
            ),
            lambda: list(
                stub.StreamJobEvents(jobs_pb2.GetJobRequest(job_id=job.job_id), metadata=metadata(other_key))
            ),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            assert refused.value.details() == f"no job {job.job_id!r}"
        theirs = stub.ListJobs(jobs_pb2.ListJobsRequest(), metadata=metadata(other_key), timeout=30)
        assert list(theirs.jobs) == [] and theirs.next_cursor == ""
        mine = stub.ListJobs(jobs_pb2.ListJobsRequest(limit=5), metadata=metadata(owner_key), timeout=30)
        assert [j.job_id for j in mine.jobs] == [job.job_id]
        assert stub.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id), metadata=metadata(owner_key)) == job
        assert (
            list(
                stub.StreamJobEvents(jobs_pb2.GetJobRequest(job_id=job.job_id), metadata=metadata(owner_key))
            )
            == []
        )  # no engine, no events: the stream ends after its idle timeout
        cancelled = stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.job_id), metadata=metadata(owner_key))
        assert cancelled.job_id == job.job_id


# ---- keys ---------------------------------------------------------------------------------------------


def test_a_missing_invalid_or_revoked_key_is_401_with_a_bearer_challenge_and_unauthenticated_on_grpc(
    api: Api, tenants: Tenants
) -> None:
    tenant = new_tenant()
    key, token = tenants.create_key(tenant, "to revoke")
    with client(api, token) as valid:
        assert valid.get("/v1/jobs").status_code == 200
    with httpx.Client(base_url=api.http, headers={"X-API-Key": token}, timeout=30) as header_key:
        assert header_key.get("/v1/jobs").status_code == 200
    assert tenants.revoke_key(key.key_id)
    wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for presented, challenge in [
        (None, 'Bearer realm="orate"'),
        ("ork_not-a-key", 'Bearer realm="orate", error="invalid_token"'),
        (wrong_secret, 'Bearer realm="orate", error="invalid_token"'),
        (token, 'Bearer realm="orate", error="invalid_token"'),  # revoked
    ]:
        with client(api, presented) as http:
            for method, path in [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/x")]:
                response = http.request(method, path, json=NOOP)
                assert response.status_code == 401, (presented, path)
                assert response.headers["www-authenticate"] == challenge
                assert response.json()["error"]["code"] == "unauthenticated"
    with grpc.insecure_channel(api.grpc) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        for presented in [(), metadata("ork_not-a-key"), metadata(token), (("x-api-key", token),)]:
            with pytest.raises(grpc.RpcError) as refused:
                stub.ListPipelines(jobs_pb2.ListPipelinesRequest(), metadata=presented, timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as refused:
                stub.SubmitJob(
                    jobs_pb2.SubmitJobRequest(pipeline="fixture-noop"), metadata=presented, timeout=30
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


# ---- quotas -------------------------------------------------------------------------------------------


def test_quota_excess_is_429_with_retry_after_and_resource_exhausted_on_grpc(
    api: Api, tenants: Tenants
) -> None:
    tenant = new_tenant()
    _, token = tenants.create_key(tenant)
    tenants.set_limits(tenant, concurrent_jobs=2)
    with client(api, token) as http, grpc.insecure_channel(api.grpc) as channel:
        # No engine runs: the jobs stay unfinished, so the concurrent-jobs quota holds still.
        assert [http.post("/v1/jobs", json=NOOP).status_code for _ in range(2)] == [202, 202]
        refused = http.post("/v1/jobs", json=NOOP, headers={"Idempotency-Key": "after-the-quota"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert int(refused.headers["retry-after"]) >= 1
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.RpcError) as exhausted:
            stub.SubmitJob(
                jobs_pb2.SubmitJobRequest(pipeline="fixture-noop"), metadata=metadata(token), timeout=30
            )
        assert exhausted.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(dict(exhausted.value.trailing_metadata())["retry-after"]) >= 1
        assert len(http.get("/v1/jobs").json()["jobs"]) == 2  # the refused submits left no job
        # The refused submit freed its Idempotency-Key: once the quota allows, the same key submits.
        tenants.set_limits(tenant, concurrent_jobs=3)
        assert (
            http.post("/v1/jobs", json=NOOP, headers={"Idempotency-Key": "after-the-quota"}).status_code
            == 202
        )

        # Uploads count towards bytes per day.
        other = new_tenant()
        _, other_token = tenants.create_key(other)
        tenants.set_limits(other, bytes_per_day=len(wav_bytes()) + 10)
        with client(api, other_token) as uploader:
            submit_with_audio(uploader)
            over = uploader.post(
                "/v1/jobs",
                data={"request": json.dumps({"pipeline": "fixture-two-stage", "inputs": {}})},
                files={"audio": ("tone.wav", wav_bytes(), "audio/wav")},
            )
            assert over.status_code == 429 and "bytes per day" in over.json()["error"]["message"]
        text = httpx.get(f"{api.http}/metrics").text
        assert "orate_tenant_quota_rejections_total{" in text and 'quota="bytes_per_day"' in text


# ---- listing ------------------------------------------------------------------------------------------


def test_the_listing_pages_stably_while_jobs_are_being_submitted(api: Api, tenants: Tenants) -> None:
    """Pages of 7 while two threads submit (to this tenant and another): every job that existed before the
    listing started comes exactly once, nothing comes twice, and the order is strictly newest first."""
    tenant, other = new_tenant(), new_tenant()
    _, token = tenants.create_key(tenant)
    _, other_token = tenants.create_key(other)
    for name in (tenant, other):  # no engine finishes the jobs
        tenants.set_limits(name, concurrent_jobs=100_000, submits_per_minute=100_000)
    with client(api, token) as http:
        before = [http.post("/v1/jobs", json=NOOP).json()["job_id"] for _ in range(30)]
        submitted = threading.Semaphore(0)
        stop = threading.Event()
        failures: list[str] = []

        def submitter(key: str) -> None:
            with client(api, key) as own:
                while not stop.is_set():
                    response = own.post("/v1/jobs", json=NOOP)
                    if response.status_code != 202:
                        failures.append(response.text)
                    submitted.release()

        threads = [threading.Thread(target=submitter, args=(key,)) for key in (token, other_token)]
        for thread in threads:
            thread.start()
        try:
            listed: list[dict] = []
            cursor = None
            pages = 0
            while True:
                # Each page is read after more submits have landed: they interleave, page by page.
                assert submitted.acquire(timeout=30) and submitted.acquire(timeout=30)
                params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
                page = http.get("/v1/jobs", params=params).json()
                listed += page["jobs"]
                pages += 1
                cursor = page["next_cursor"]
                if cursor is None:
                    break
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert failures == []
        ids = [job["job_id"] for job in listed]
        assert len(ids) == len(set(ids)), "a job came twice"
        assert set(before) <= set(ids), f"skipped: {set(before) - set(ids)}"
        order = [(job["created_unix_ms"], job["job_id"]) for job in listed]
        assert order == sorted(order, reverse=True) and pages >= 5
        assert {job["tenant"] for job in listed} == {tenant}
        # Afterwards the jobs submitted meanwhile come first, then the earlier ones, newest first.
        everything, cursor = [], None
        while True:
            page = http.get(
                "/v1/jobs", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
            ).json()
            everything += [job["job_id"] for job in page["jobs"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert everything[-30:] == before[::-1] and len(everything) > 30


def test_listing_filters_and_parameters_over_rest_and_grpc(api: Api, tenants: Tenants) -> None:
    tenant = new_tenant()
    _, token = tenants.create_key(tenant)
    with client(api, token) as http, grpc.insecure_channel(api.grpc) as channel:
        noop = [http.post("/v1/jobs", json=NOOP).json() for _ in range(3)]
        audio = submit_with_audio(http)
        by_pipeline = http.get("/v1/jobs", params={"pipeline": "fixture-two-stage"}).json()["jobs"]
        assert [job["job_id"] for job in by_pipeline] == [audio["job_id"]]
        assert http.get("/v1/jobs", params={"status": "running"}).json() == {"jobs": [], "next_cursor": None}
        queued = http.get("/v1/jobs", params=[("status", "queued"), ("status", "failed")]).json()["jobs"]
        assert len(queued) == 4
        at = noop[1]["created_unix_ms"]
        for bound, created in (
            ("created_after", lambda ms: ms >= at),
            ("created_before", lambda ms: ms < at),
        ):
            window = http.get("/v1/jobs", params={bound: at}).json()["jobs"]
            expected = [job["job_id"] for job in [audio, *noop[::-1]] if created(job["created_unix_ms"])]
            assert [job["job_id"] for job in window] == expected, bound
        for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "bm90IGEgY3Vyc29y"}, {"status": "done"}):
            response = http.get("/v1/jobs", params=bad)
            assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"

        stub = jobs_pb2_grpc.JobServiceStub(channel)
        pages, cursor = [], ""
        while True:
            page = stub.ListJobs(
                jobs_pb2.ListJobsRequest(limit=3, cursor=cursor, status=[jobs_pb2.JOB_STATUS_QUEUED]),
                metadata=metadata(token),
                timeout=30,
            )
            pages.append([job.job_id for job in page.jobs])
            cursor = page.next_cursor
            if not cursor:
                break
        assert pages == [[audio["job_id"], noop[2]["job_id"], noop[1]["job_id"]], [noop[0]["job_id"]]]
        with pytest.raises(grpc.RpcError) as invalid:
            stub.ListJobs(jobs_pb2.ListJobsRequest(limit=500), metadata=metadata(token), timeout=30)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# ---- open mode and `orate keys` -------------------------------------------------------------------------


def test_open_mode_serves_requests_without_a_key_as_tenant_dev(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, tenants: Tenants
) -> None:
    tenant = new_tenant()
    _, token = tenants.create_key(tenant)
    with running_api(kafka_bootstrap, redis_url, tmp_path, "open") as open_api:
        with client(open_api, None) as anonymous, client(open_api, token) as keyed:
            job = anonymous.post("/v1/jobs", json=NOOP).json()
            assert job["tenant"] == "dev"
            assert anonymous.get(f"/v1/jobs/{job['job_id']}").status_code == 200
            # A key still names its own tenant, which does not see dev's jobs; a bad key is refused.
            assert keyed.post("/v1/jobs", json=NOOP).json()["tenant"] == tenant
            assert keyed.get(f"/v1/jobs/{job['job_id']}").status_code == 404
            with client(open_api, "ork_not-a-key") as bad:
                assert bad.get("/v1/jobs").status_code == 401
            security = anonymous.get("/openapi.json").json()["paths"]["/v1/jobs"]["get"]["security"]
            assert {} in security
        with grpc.insecure_channel(open_api.grpc) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            assert stub.GetJob(jobs_pb2.GetJobRequest(job_id=job["job_id"]), timeout=30).tenant == "dev"


def test_orate_keys_creates_lists_revokes_and_sets_quotas(
    redis_url: str, tenants: Tenants, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = new_tenant()
    assert cli.main(["keys", "create", "--tenant", tenant, "--label", "ci", "--redis-url", redis_url]) == 0
    token = capsys.readouterr().out.strip()
    assert tenants.authenticate(token) == tenant
    key_id = token.split("_")[1]
    assert cli.main(["keys", "list", "--tenant", tenant, "--redis-url", redis_url]) == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[:2] == [key_id, tenant] and row.split()[-2:] == ["-", "ci"]
    assert token.split("_", 2)[2] not in row
    assert cli.main(["keys", "revoke", key_id, "--redis-url", redis_url]) == 0
    assert tenants.authenticate(token) is None
    assert cli.main(["keys", "revoke", "0" * 16, "--redis-url", redis_url]) == 1
    quota = ["keys", "quota", tenant, "--submits-per-minute", "7", "--redis-url", redis_url]
    assert cli.main(quota) == 0
    out = capsys.readouterr().out
    assert f"{tenant} submits_per_minute: 7" in out and "ORATE_API__QUOTA__CONCURRENT_JOBS" in out
    assert tenants.limits(tenant).submits_per_minute == 7
    assert cli.main(["keys", "quota", tenant, "--bytes-per-day", "0", "--redis-url", redis_url]) == 2
    assert cli.main(["keys", "create", "--tenant", "Not Valid", "--redis-url", redis_url]) == 2


def test_orate_up_prints_a_dev_key_and_keeps_it_while_it_works(
    redis_url: str, tenants: Tenants, tmp_path: Path
) -> None:
    urls = StackUrls(tmp_path, "", redis_url, api_url="http://api", env={"ORATE_API__AUTH": "open"})
    notice = cli._dev_key_notice(urls)
    (token,) = re.findall(r"ork_\S+", notice)
    assert tenants.authenticate(token) == "dev"
    assert "open: a request without a key acts as tenant dev" in notice
    key_file = tmp_path / cli.DEV_KEY_FILE
    assert key_file.read_text().strip() == token and key_file.stat().st_mode & 0o777 == 0o600
    assert re.findall(r"ork_\S+", cli._dev_key_notice(urls)) == [token]  # the same key while it works
    assert tenants.revoke_key(token.split("_")[1])
    renewed = cli._dev_key_notice(StackUrls(tmp_path, "", redis_url, api_url="http://api"))
    (new_token,) = re.findall(r"ork_\S+", renewed)
    assert new_token != token and tenants.authenticate(new_token) == "dev"
    assert "keys: every /v1 request needs one" in renewed
