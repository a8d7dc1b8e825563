"""Redis store for jobs (with their stage states), idempotency keys, each job's event history, the engine's
stage deadline timers and the runners' heartbeats."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass

import anyio
import redis
import redis.asyncio
from orate.v1 import jobs_pb2

from shared.events import TERMINAL_TYPES
from shared.settings import RedisSettings

_PREFIX = "orate"
# One sorted set for every job's timers (score: when to look at the stage attempt again, in unix ms): not
# tied to Kafka partitions, so an engine restart or a rebalance loses none.
_DEADLINES_KEY = f"{_PREFIX}:deadlines"
# A heartbeat outlives its runner's last beat by this much: the engine first looks at most a heartbeat
# timeout after that beat (pipelines cap heartbeat_timeout_s at half of this), then every few seconds until
# its deadline command is applied, and must still tell a runner that went silent from one that never came.
HEARTBEAT_TTL_S = 600
# Deletes an idempotency key only while it still names the job that claimed it.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Claims the due timers: moves them to ARGV[2] (now plus a lease), so that other engines' scans skip them,
# and a scan that dies half-way leaves them to be claimed again once the lease has passed.
_CLAIM_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
"""


@dataclass(frozen=True)
class StageAttempt:
    """One attempt of one stage of a job: what a deadline timer and a heartbeat are about."""

    job_id: str
    stage: str
    attempt: int

    @property
    def member(self) -> str:
        return f"{self.job_id}/{self.stage}/{self.attempt}"

    @classmethod
    def parse(cls, member: str | bytes) -> StageAttempt:
        text = member.decode() if isinstance(member, bytes) else member
        # Stage names hold no "/" and attempts are numbers; a job id may hold anything.
        job_id, stage, attempt = text.rsplit("/", 2)
        return cls(job_id, stage, int(attempt))


@dataclass(frozen=True)
class Heartbeat:
    """A runner's word on a stage attempt: when it started the work (after any retry backoff) and when
    it last said it is still on it (unix ms)."""

    started_unix_ms: int
    beat_unix_ms: int

    def encode(self) -> bytes:
        return f"{self.started_unix_ms} {self.beat_unix_ms}".encode()

    @classmethod
    def decode(cls, data: bytes) -> Heartbeat:
        started, beat = data.split()
        return cls(int(started), int(beat))


def deadline_changes(jobs: Iterable[jobs_pb2.Job]) -> tuple[dict[str, int], list[str]]:
    """The timer writes that the jobs' stage states call for: each dispatched stage's current attempt ->
    its start-by time, and the timers to drop (earlier attempts, and every attempt of a stage that is no
    longer dispatched). A function of the states alone, so a replayed batch writes the same again."""
    due: dict[str, int] = {}
    dropped: list[str] = []
    for job in jobs:
        for name, state in job.stages.items():
            dispatched = state.status == jobs_pb2.STAGE_STATUS_DISPATCHED and state.start_by_unix_ms > 0
            last_dropped = state.attempt - 1 if dispatched else state.attempt
            dropped += [StageAttempt(job.job_id, name, n).member for n in range(1, last_dropped + 1)]
            if dispatched:
                due[StageAttempt(job.job_id, name, state.attempt).member] = state.start_by_unix_ms
    return due, dropped


def _job_key(job_id: str) -> str:
    return f"{_PREFIX}:job:{job_id}"


def _idempotency_key(key: str) -> str:
    return f"{_PREFIX}:idem:{key}"


def _heartbeat_key(attempt: StageAttempt) -> str:
    return f"{_PREFIX}:beat:{attempt.member}"


def _events_key(job_id: str) -> str:
    """The history list's key, also the name of the job's pub/sub channel (a separate namespace)."""
    return f"{_PREFIX}:events:{job_id}"


def _event_identity(data: bytes) -> tuple[bytes | str, bool]:
    """(dedupe key, is terminal) of a stored event: its CloudEvent id where it parses, else its bytes."""
    try:
        envelope = json.loads(data)
    except ValueError:
        return data, False
    if not isinstance(envelope, dict):
        return data, False
    identity = envelope.get("id")
    return (identity if isinstance(identity, str) else data), envelope.get("type") in TERMINAL_TYPES


async def _published(pubsub: redis.asyncio.client.PubSub, timeout_s: float) -> AsyncIterator[bytes]:
    """Messages published on the subscribed channel, until timeout_s pass without one."""
    silent_until = time.monotonic() + timeout_s
    while (remaining := silent_until - time.monotonic()) > 0:
        message = await pubsub.get_message(timeout=remaining)
        if message is not None and message["type"] == "message":
            silent_until = time.monotonic() + timeout_s
            yield message["data"]


async def _concat(first: list[bytes], then: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for item in first:
        yield item
    async for item in then:
        yield item


class JobStore:
    """Jobs are serialized `orate.v1.Job` messages under `orate:job:<id>`, kept for job_ttl_s;
    events are a list `orate:events:<id>` (same TTL) mirrored on the pub/sub channel of that name;
    deadline timers are the sorted set `orate:deadlines` (member `<job>/<stage>/<attempt>`, score in unix
    ms); heartbeats are `orate:beat:<job>/<stage>/<attempt>` = "<started ms> <beat ms>", kept for
    HEARTBEAT_TTL_S after the last beat."""

    def __init__(self, settings: RedisSettings) -> None:
        self._settings = settings
        self._redis = redis.Redis.from_url(settings.url, socket_connect_timeout=5.0)
        self._release = self._redis.register_script(_RELEASE_SCRIPT)
        self._claim = self._redis.register_script(_CLAIM_SCRIPT)

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    def claim_idempotency_key(self, key: str, job_id: str) -> str | None:
        """Atomically bind key -> job_id (SET NX with TTL). Returns the job id already bound, or None
        if this call bound it."""
        name = _idempotency_key(key)
        while True:
            if self._redis.set(name, job_id, nx=True, ex=self._settings.idempotency_ttl_s):
                return None
            bound = self._redis.get(name)
            # None means the binding expired between the two calls: try to claim it again.
            if bound is not None:
                return bound.decode()

    def release_idempotency_key(self, key: str, job_id: str) -> None:
        """Undo a claim made by job_id (used when the submit could not be accepted)."""
        self._release(keys=[_idempotency_key(key)], args=[job_id])

    def put_job(self, job: jobs_pb2.Job) -> None:
        """Store the job (serialized protobuf) with the job TTL."""
        self.write([job], [])

    def get_job(self, job_id: str) -> jobs_pb2.Job | None:
        data = self._redis.get(_job_key(job_id))
        return None if data is None else jobs_pb2.Job.FromString(data)

    def get_jobs(self, job_ids: list[str]) -> dict[str, jobs_pb2.Job]:
        """Jobs found, by id, in one round trip."""
        if not job_ids:
            return {}
        values = self._redis.mget([_job_key(job_id) for job_id in job_ids])
        return {
            job_id: jobs_pb2.Job.FromString(data)
            for job_id, data in zip(job_ids, values, strict=True)
            if data is not None
        }

    def get_jobs_and_beat(
        self, job_ids: list[str], beats: Mapping[StageAttempt, Heartbeat]
    ) -> dict[str, jobs_pb2.Job]:
        """Jobs found, by id, and the heartbeats recorded, in one round trip (a runner's pickup)."""
        if not job_ids:
            self.beat(beats)
            return {}
        pipe = self._redis.pipeline(transaction=False)
        pipe.mget([_job_key(job_id) for job_id in job_ids])
        self._queue_beats(pipe, beats)
        values = pipe.execute()[0]
        return {
            job_id: jobs_pb2.Job.FromString(data)
            for job_id, data in zip(job_ids, values, strict=True)
            if data is not None
        }

    def beat(self, beats: Mapping[StageAttempt, Heartbeat]) -> None:
        """Record heartbeats, in one round trip."""
        if beats:
            pipe = self._redis.pipeline(transaction=False)
            self._queue_beats(pipe, beats)
            pipe.execute()

    @staticmethod
    def _queue_beats(pipe: redis.client.Pipeline, beats: Mapping[StageAttempt, Heartbeat]) -> None:
        for attempt, beat in beats.items():
            pipe.set(_heartbeat_key(attempt), beat.encode(), ex=HEARTBEAT_TTL_S)

    def write(self, jobs: list[jobs_pb2.Job], events: list[tuple[str, bytes]]) -> None:
        """Store the jobs with the deadline timers their stage states call for (`deadline_changes`; a
        timer already there keeps the time a scan moved it to), then append the events to their jobs'
        histories (and publish them), in one round trip: Redis runs a pipeline's commands in order."""
        if not jobs and not events:
            return
        pipe = self._redis.pipeline(transaction=False)
        for job in jobs:
            pipe.set(_job_key(job.job_id), job.SerializeToString(), ex=self._settings.job_ttl_s)
        due, dropped = deadline_changes(jobs)
        if due:
            pipe.zadd(_DEADLINES_KEY, due, nx=True)
        if dropped:
            pipe.zrem(_DEADLINES_KEY, *dropped)
        for job_id, data in events:
            # History first: a follower that sees the publish can always find the event in the list.
            pipe.rpush(_events_key(job_id), data)
            pipe.publish(_events_key(job_id), data)
        for job_id in dict.fromkeys(job_id for job_id, _ in events):
            pipe.expire(_events_key(job_id), self._settings.job_ttl_s)
        pipe.execute()

    def claim_due_deadlines(self, now_unix_ms: int, lease_ms: int, limit: int) -> list[StageAttempt]:
        """Up to limit timers due at now_unix_ms, each moved lease_ms on (atomically), so that no other
        scan takes them in the meantime and they come due again should nothing settle them."""
        due = self._claim(keys=[_DEADLINES_KEY], args=[now_unix_ms, now_unix_ms + lease_ms, limit])
        return [StageAttempt.parse(member) for member in due]

    def deadline_facts(
        self, attempts: list[StageAttempt]
    ) -> tuple[dict[str, jobs_pb2.Job], dict[StageAttempt, Heartbeat]]:
        """The jobs of the attempts (by id) and the heartbeats found, in one round trip."""
        if not attempts:
            return {}, {}
        job_ids = sorted({attempt.job_id for attempt in attempts})
        pipe = self._redis.pipeline(transaction=False)
        pipe.mget([_job_key(job_id) for job_id in job_ids])
        pipe.mget([_heartbeat_key(attempt) for attempt in attempts])
        job_values, beat_values = pipe.execute()
        jobs = {
            job_id: jobs_pb2.Job.FromString(data)
            for job_id, data in zip(job_ids, job_values, strict=True)
            if data is not None
        }
        beats = {
            attempt: Heartbeat.decode(data)
            for attempt, data in zip(attempts, beat_values, strict=True)
            if data is not None
        }
        return jobs, beats

    def settle_deadlines(self, later: Mapping[StageAttempt, int], done: Iterable[StageAttempt]) -> None:
        """Move timers to new times (only those still there: the engine may have dropped one since) and
        drop the timers that no longer apply, in one round trip."""
        dropped = [attempt.member for attempt in done]
        if not later and not dropped:
            return
        pipe = self._redis.pipeline(transaction=False)
        if later:
            pipe.zadd(_DEADLINES_KEY, {a.member: at for a, at in later.items()}, xx=True)
        if dropped:
            pipe.zrem(_DEADLINES_KEY, *dropped)
        pipe.execute()

    def deadlines(self) -> dict[StageAttempt, int]:
        """Every timer and when it comes due (unix ms), for operators and tests."""
        return {
            StageAttempt.parse(member): int(score)
            for member, score in self._redis.zrange(_DEADLINES_KEY, 0, -1, withscores=True)
        }

    async def follow_events(self, job_id: str, timeout_s: float) -> AsyncIterator[bytes]:
        """Every event of the job: the history first, then new ones as they are published, until
        the job's terminal event or timeout_s of silence. Subscribes before reading the history
        and drops duplicates, so nothing published in between is missed. A follower waits on the
        event loop with a connection of its own (closed when it ends), holding no thread: a server
        can keep thousands of streams open while its thread pool serves requests."""
        client = redis.asyncio.Redis.from_url(self._settings.url, socket_connect_timeout=5.0)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(_events_key(job_id))
            # SUBSCRIBE is only in force once Redis confirms it; reading the history before that
            # could miss an event published in between.
            deadline = time.monotonic() + 10.0
            while True:
                message = await pubsub.get_message(timeout=max(deadline - time.monotonic(), 0.0))
                if message is not None and message["type"] == "subscribe":
                    break
                if time.monotonic() >= deadline:
                    raise redis.TimeoutError(f"no confirmation of the subscription to {job_id}'s events")
            history = await client.lrange(_events_key(job_id), 0, -1)
            seen: set[bytes | str] = set()
            async for data in _concat(history, _published(pubsub, timeout_s)):
                identity, terminal = _event_identity(data)
                if identity in seen:
                    continue
                seen.add(identity)
                yield data
                if terminal:
                    return
        finally:
            # Shielded: a stream whose client left is cancelled by an anyio cancel scope (Starlette's),
            # which would cancel these awaits too and leave both connections open.
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()
                await client.aclose()

    def close(self) -> None:
        self._redis.close()


UpdateFn = Callable[[jobs_pb2.Job], bool]
