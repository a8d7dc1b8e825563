"""The job store against a real Redis: idempotency keys, jobs, event history and following events, deadline
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
from shared.store import HEARTBEAT_TTL_S, Heartbeat, JobStore, StageAttempt

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
    ttl = redis.Redis.from_url(redis_settings.url).ttl(f"orate:idem:{key}")
    assert 0 < ttl <= redis_settings.idempotency_ttl_s


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
