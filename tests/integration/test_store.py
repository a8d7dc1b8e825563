"""The job store against a real Redis: idempotency keys, jobs, each tenant's listing index, the release of
finished jobs from their tenants' concurrent-jobs quota, event history and following events, deadline
timers and heartbeats."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from collections.abc import Iterator

import anyio
import pytest
import redis
from orate.v1 import jobs_pb2

from shared import events
from shared.settings import RedisSettings
from shared.store import (
    HEARTBEAT_TTL_S,
    IDEMPOTENCY_CLAIM_TTL_S,
    Heartbeat,
    JobQuery,
    JobStore,
    StageAttempt,
    jobs_index_key,
)
from shared.tenants import Tenants, active_jobs_key

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_settings: RedisSettings) -> Iterator[JobStore]:
    job_store = JobStore(redis_settings)
    yield job_store
    job_store.close()


def _job_id() -> str:
    return f"job-{uuid.uuid4().hex}"


def _event(job_id: str, event_type: str, stage: str = "", attempt: int = 0) -> bytes:
    event = jobs_pb2.JobEvent(job_id=job_id, type=event_type, stage=stage, attempt=attempt, time_unix_ms=1)
    return events.to_cloudevent(event)


def _types(stream: list[bytes]) -> list[str]:
    return [events.from_cloudevent(data)["type"] for data in stream]


def test_idempotency_key_binds_the_first_job(store: JobStore, redis_settings: RedisSettings) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    assert store.ping()
    assert store.claim_idempotency_key(key, "job-a") is None
    assert store.claim_idempotency_key(key, "job-b") == "job-a"
    # Only the claimant can release it.
    store.release_idempotency_key(key, "job-b")
    assert store.claim_idempotency_key(key, "job-c") == "job-a"
    store.release_idempotency_key(key, "job-a")
    assert store.claim_idempotency_key(key, "job-c") is None
    client = redis.Redis.from_url(redis_settings.url)
    # A claim whose job is never stored (its API died) frees the key soon; a stored job keeps it a day.
    assert 0 < client.ttl(f"orate:idem:{key}") <= IDEMPOTENCY_CLAIM_TTL_S
    store.put_job(jobs_pb2.Job(job_id="job-c", pipeline="transcribe"), key)
    assert IDEMPOTENCY_CLAIM_TTL_S < client.ttl(f"orate:idem:{key}") <= redis_settings.idempotency_ttl_s


def test_job_round_trip_with_ttl(store: JobStore, redis_settings: RedisSettings) -> None:
    job = jobs_pb2.Job(job_id=_job_id(), pipeline="transcribe", status=jobs_pb2.JOB_STATUS_RUNNING)
    job.inputs["audio"].text = "hello"
    stage = job.stages["asr"]
    stage.name, stage.service, stage.attempt = "asr", "asr-sactc", 1
    stage.status = jobs_pb2.STAGE_STATUS_DISPATCHED
    store.put_job(job)
    assert store.get_job(job.job_id) == job
    assert store.get_job(_job_id()) is None
    ttl = redis.Redis.from_url(redis_settings.url).ttl(f"orate:job:{job.job_id}")
    assert 0 < ttl <= redis_settings.job_ttl_s

    others = [jobs_pb2.Job(job_id=_job_id(), pipeline=f"p{i}") for i in range(3)]
    store.write(others, [])
    missing = _job_id()
    found = store.get_jobs([o.job_id for o in others] + [missing])
    assert found == {o.job_id: o for o in others}


def test_follow_yields_history_then_live_events_and_stops_at_the_terminal_one(
    store: JobStore, redis_settings: RedisSettings
) -> None:
    job_id = _job_id()
    store.write([], [(job_id, _event(job_id, events.JOB_ACCEPTED))])
    store.write([], [(job_id, _event(job_id, events.STAGE_STARTED, "asr", 1))])
    received: queue.Queue[bytes | None] = queue.Queue()

    async def follow() -> None:
        async for data in store.follow_events(job_id, timeout_s=10.0):
            received.put(data)
        received.put(None)

    follower = threading.Thread(target=asyncio.run, args=(follow(),), daemon=True)
    follower.start()
    history = [received.get(timeout=5.0), received.get(timeout=5.0)]
    assert _types(history) == [events.JOB_ACCEPTED, events.STAGE_STARTED]

    store.write(
        [],
        [
            (job_id, _event(job_id, events.STAGE_STARTED, "asr", 1)),  # a replay: dropped
            (job_id, _event(job_id, events.STAGE_COMPLETED, "asr", 1)),
            (job_id, _event(job_id, events.JOB_COMPLETED)),
        ],
    )
    live = []
    while (item := received.get(timeout=5.0)) is not None:
        live.append(item)
    follower.join(timeout=5.0)
    assert _types(live) == [events.STAGE_COMPLETED, events.JOB_COMPLETED]
    # The history keeps every appended event, the replay too; followers drop duplicates.
    assert redis.Redis.from_url(redis_settings.url).llen(f"orate:events:{job_id}") == 5


def test_follow_of_a_finished_job_returns_its_history_at_once(store: JobStore) -> None:
    job_id = _job_id()
    finished = [events.JOB_ACCEPTED, events.JOB_FAILED]
    store.write([], [(job_id, _event(job_id, event_type)) for event_type in finished])
    started = time.monotonic()
    assert _types(_follow_all(store, job_id, timeout_s=30.0)) == finished
    assert time.monotonic() - started < 5.0


def test_follow_gives_up_after_silence(store: JobStore) -> None:
    job_id = _job_id()
    store.write([], [(job_id, _event(job_id, events.JOB_ACCEPTED))])
    started = time.monotonic()
    assert _types(_follow_all(store, job_id, timeout_s=0.3)) == [events.JOB_ACCEPTED]
    assert 0.3 <= time.monotonic() - started < 3.0


def _follow_all(store: JobStore, job_id: str, timeout_s: float) -> list[bytes]:
    async def follow() -> list[bytes]:
        return [data async for data in store.follow_events(job_id, timeout_s)]

    return asyncio.run(follow())


def test_a_follower_cancelled_mid_wait_closes_its_connection(
    store: JobStore, redis_settings: RedisSettings
) -> None:
    """A client that goes away cancels its stream (Starlette does it through an anyio cancel scope, which
    cancels every later await too): the follower must still close its Redis connection."""
    job_id = _job_id()
    store.write([], [(job_id, _event(job_id, events.JOB_ACCEPTED))])
    admin = redis.Redis.from_url(redis_settings.url)
    before = len(admin.client_list())

    async def follow_until_cancelled() -> list[bytes]:
        received = []
        with anyio.move_on_after(0.5):
            async for data in store.follow_events(job_id, timeout_s=30.0):
                received.append(data)
        return received

    assert _types(anyio.run(follow_until_cancelled)) == [events.JOB_ACCEPTED]
    # Redis drops a closed connection from its list a moment later.
    deadline = time.monotonic() + 5.0
    while len(admin.client_list()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(admin.client_list()) == before
    admin.close()


def _timers_of(store: JobStore, job_id: str) -> dict[StageAttempt, int]:
    return {attempt: at for attempt, at in store.deadlines().items() if attempt.job_id == job_id}


def test_deadline_timers_follow_the_stage_states_in_the_job_writes(store: JobStore) -> None:
    # Scores far in the past (unix ms 1000...): no other test's timer is due at the times claimed here.
    job = jobs_pb2.Job(job_id=_job_id(), pipeline="transcribe", status=jobs_pb2.JOB_STATUS_RUNNING)
    state = job.stages["asr"]
    state.name, state.service, state.attempt = "asr", "asr-sactc", 1
    state.status, state.start_by_unix_ms = jobs_pb2.STAGE_STATUS_DISPATCHED, 1_000
    first, second = StageAttempt(job.job_id, "asr", 1), StageAttempt(job.job_id, "asr", 2)
    store.write([job], [])
    assert _timers_of(store, job.job_id) == {first: 1_000}

    assert first in store.claim_due_deadlines(now_unix_ms=1_500, lease_ms=5_000, limit=1_000)
    assert first not in store.claim_due_deadlines(now_unix_ms=1_600, lease_ms=5_000, limit=1_000)
    store.write([job], [])  # a rewrite keeps the time a scan moved the timer to
    assert _timers_of(store, job.job_id) == {first: 6_500}

    state.attempt, state.start_by_unix_ms = 2, 9_000  # retried
    store.write([job], [])
    assert _timers_of(store, job.job_id) == {second: 9_000}
    store.settle_deadlines({first: 10_000, second: 20_000}, [])  # a dropped timer stays dropped
    assert _timers_of(store, job.job_id) == {second: 20_000}

    state.status = jobs_pb2.STAGE_STATUS_SUCCEEDED
    store.write([job], [])
    assert _timers_of(store, job.job_id) == {}


def test_heartbeats_are_read_with_the_jobs_and_kept_for_their_ttl(
    store: JobStore, redis_settings: RedisSettings
) -> None:
    job = jobs_pb2.Job(job_id=_job_id(), pipeline="transcribe", status=jobs_pb2.JOB_STATUS_RUNNING)
    store.put_job(job)
    attempt = StageAttempt(job.job_id, "asr", 1)
    assert store.get_jobs_and_beat([job.job_id], {attempt: Heartbeat(100, 100)}) == {job.job_id: job}
    store.beat({attempt: Heartbeat(100, 350)})
    jobs, beats = store.deadline_facts([attempt, StageAttempt(job.job_id, "asr", 2)])
    assert (jobs, beats) == ({job.job_id: job}, {attempt: Heartbeat(100, 350)})
    ttl = redis.Redis.from_url(redis_settings.url).ttl(f"orate:beat:{attempt.member}")
    assert 0 < ttl <= HEARTBEAT_TTL_S


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _listed(store: JobStore, tenant: str, **query: object) -> list[str]:
    """Every job id the listing returns, following the cursors, with the page size of the query."""
    found: list[str] = []
    cursor = ""
    while True:
        jobs, cursor = store.list_jobs(tenant, JobQuery(**{**query, "cursor": cursor}))
        found += [job.job_id for job in jobs]
        if not cursor:
            return found


def test_jobs_are_listed_newest_first_by_creation_then_id_with_filters(store: JobStore) -> None:
    tenant, now_ms = _tenant(), int(time.time() * 1000)
    # Created at four times, two jobs at the second one (ordered by id there).
    specs = [(now_ms - 4000, "a"), (now_ms - 3000, "b"), (now_ms - 3000, "c"), (now_ms - 1000, "d")]
    jobs = [
        jobs_pb2.Job(
            job_id=f"{suffix}-{uuid.uuid4().hex[:6]}",
            tenant=tenant,
            pipeline="talk" if suffix in "ad" else "transcribe",
            status=jobs_pb2.JOB_STATUS_SUCCEEDED if suffix == "c" else jobs_pb2.JOB_STATUS_RUNNING,
            created_unix_ms=created,
        )
        for created, suffix in specs
    ]
    for job in jobs:
        store.put_job(job)
    store.put_job(jobs_pb2.Job(job_id=_job_id(), tenant=_tenant(), created_unix_ms=now_ms))  # someone else's
    newest_first = [jobs[3].job_id, jobs[2].job_id, jobs[1].job_id, jobs[0].job_id]
    for limit in (1, 2, 3, 4, 5):
        assert _listed(store, tenant, limit=limit) == newest_first, limit
    first, cursor = store.list_jobs(tenant, JobQuery(limit=4))
    assert [job.job_id for job in first] == newest_first and cursor == ""  # the end is known: no cursor
    assert _listed(store, tenant, pipeline="talk") == [jobs[3].job_id, jobs[0].job_id]
    assert _listed(store, tenant, statuses=frozenset({jobs_pb2.JOB_STATUS_SUCCEEDED})) == [jobs[2].job_id]
    # created_after is inclusive, created_before exclusive: adjacent windows neither overlap nor leave gaps.
    window = {"created_after_unix_ms": now_ms - 3000, "created_before_unix_ms": now_ms - 1000}
    assert _listed(store, tenant, limit=1, **window) == [jobs[2].job_id, jobs[1].job_id]
    assert _listed(store, tenant, created_before_unix_ms=now_ms - 3000) == [jobs[0].job_id]
    # A job that is gone (deleted, expired) is skipped, not returned empty.
    redis.Redis.from_url(store._settings.url).delete(f"orate:job:{jobs[2].job_id}")
    assert _listed(store, tenant, limit=1) == [jobs[3].job_id, jobs[1].job_id, jobs[0].job_id]
    with pytest.raises(ValueError, match="cursor"):
        store.list_jobs(tenant, JobQuery(cursor="bm9wZQ"))


def test_a_rare_filter_returns_short_pages_with_a_cursor_and_finds_every_match(store: JobStore) -> None:
    tenant, now_ms = _tenant(), int(time.time() * 1000)
    jobs = [
        jobs_pb2.Job(
            job_id=f"j{i:03d}",
            tenant=tenant,
            pipeline="rare" if i in (3, 40) else "common",
            created_unix_ms=now_ms - 1000 + i,
        )
        for i in range(50)
    ]
    store.write(jobs, [], new=[job.job_id for job in jobs])
    page, cursor = store.list_jobs(tenant, JobQuery(pipeline="rare", limit=1))
    assert [job.job_id for job in page] == ["j040"] and cursor
    # 10 x limit entries per request: the next pages scan on from the cursor, finding nothing for a while.
    pages = []
    while cursor:
        page, cursor = store.list_jobs(tenant, JobQuery(pipeline="rare", limit=1, cursor=cursor))
        pages.append([job.job_id for job in page])
    assert [job for page in pages for job in page] == ["j003"] and [] in pages


def test_index_entries_older_than_the_job_ttl_go_and_the_index_expires_with_the_jobs(
    store: JobStore, redis_settings: RedisSettings
) -> None:
    tenant, now_ms, ttl_ms = _tenant(), int(time.time() * 1000), redis_settings.job_ttl_s * 1000
    old = jobs_pb2.Job(job_id=_job_id(), tenant=tenant, created_unix_ms=now_ms - ttl_ms - 60_000)
    store.put_job(old)
    fresh = jobs_pb2.Job(job_id=_job_id(), tenant=tenant, created_unix_ms=now_ms)
    store.put_job(fresh)
    raw = redis.Redis.from_url(redis_settings.url)
    assert raw.zrange(jobs_index_key(tenant), 0, -1) == [f"{now_ms:013d}:{fresh.job_id}".encode()]
    assert 0 < raw.ttl(jobs_index_key(tenant)) <= redis_settings.job_ttl_s
    store.write([fresh], [])  # a later write of a known job does not list it again
    assert raw.zcard(jobs_index_key(tenant)) == 1
    raw.close()


def test_a_finished_job_leaves_its_tenants_active_set_in_its_write(
    store: JobStore, redis_settings: RedisSettings
) -> None:
    tenant = _tenant()
    tenants = Tenants(redis_settings)
    job = jobs_pb2.Job(job_id=_job_id(), tenant=tenant, status=jobs_pb2.JOB_STATUS_QUEUED, created_unix_ms=1)
    tenants.admit(tenant, job.job_id, 0)
    tenants.close()
    raw = redis.Redis.from_url(redis_settings.url)
    store.put_job(job)
    job.status = jobs_pb2.JOB_STATUS_RUNNING
    store.write([job], [])
    assert raw.smembers(active_jobs_key(tenant)) == {job.job_id.encode()}
    job.status = jobs_pb2.JOB_STATUS_CANCELLED
    store.write([job], [])
    assert raw.smembers(active_jobs_key(tenant)) == set()
    store.write([job], [])  # a replayed write: nothing left to take out, nothing fails
    assert raw.smembers(active_jobs_key(tenant)) == set()
    raw.close()
