"""Redis store for jobs (with their stage states), each tenant's job listing index, idempotency keys, each
job's event history, the engine's stage deadline timers and the runners' heartbeats."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

import anyio
import redis
import redis.asyncio
from orate.v1 import jobs_pb2

from shared.events import TERMINAL_TYPES
from shared.settings import RedisSettings
from shared.tenants import active_jobs_key

_PREFIX = "orate"
TERMINAL_JOB_STATUSES = frozenset(
    {jobs_pb2.JOB_STATUS_SUCCEEDED, jobs_pb2.JOB_STATUS_FAILED, jobs_pb2.JOB_STATUS_CANCELLED}
)
# Listing: each tenant's jobs are one sorted set with every score 0, so that it orders by member, and the
# member `<created unix ms, 13 digits>:<job id>` orders by creation time, then job id (ZREVRANGEBYLEX for
# newest first). 13 digits hold every time until the year 2286.
_CREATED_DIGITS = 13
MAX_CREATED_UNIX_MS = 10**_CREATED_DIGITS - 1
_INDEX_MEMBER = re.compile(rf"^\d{{{_CREATED_DIGITS}}}:.+$", re.DOTALL)
# A listing request reads at most this many index entries per job it may return: a filter that matches
# few jobs returns a short page (even an empty one) with a cursor rather than scanning the whole index.
LIST_SCAN_FACTOR = 10
# One sorted set for every job's timers (score: when to look at the stage attempt again, in unix ms): not
# tied to Kafka partitions, so an engine restart or a rebalance loses none.
_DEADLINES_KEY = f"{_PREFIX}:deadlines"
# A heartbeat outlives its runner's last beat by this much: the engine first looks at most a heartbeat
# timeout after that beat (pipelines cap heartbeat_timeout_s at half of this), then every few seconds until
# its deadline command is applied, and must still tell a runner that went silent from one that never came.
HEARTBEAT_TTL_S = 600
# A claimed idempotency key lasts this long until its job is stored, then RedisSettings.idempotency_ttl_s:
# a submit whose API died in between frees the key for the client's retry within a minute, rather than
# answering it "in progress" (409) for a day.
IDEMPOTENCY_CLAIM_TTL_S = 60
# The timer of a queued job, in the same sorted set as the stage timers: its "stage" can be no pipeline's
# (stage names start with a letter). A job still queued this long after it was stored lost its SubmitJob
# (a broker crash loses the records of its last second), and the engine produces it again from the job.
SUBMIT_TIMER = "(submit)"
QUEUED_RESEND_MS = 30_000
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
    """The timer writes that the jobs' states call for: each dispatched stage's current attempt -> its
    start-by time, a queued job -> its resend time, and the timers to drop (earlier attempts, every attempt
    of a stage that is no longer dispatched, the submit timer of a job no longer queued). A function of the
    states alone, so a replayed batch writes the same again."""
    due: dict[str, int] = {}
    dropped: list[str] = []
    for job in jobs:
        submit = StageAttempt(job.job_id, SUBMIT_TIMER, 0).member
        if job.status == jobs_pb2.JOB_STATUS_QUEUED:
            due[submit] = job.created_unix_ms + QUEUED_RESEND_MS
        else:
            dropped.append(submit)
        for name, state in job.stages.items():
            dispatched = state.status == jobs_pb2.STAGE_STATUS_DISPATCHED and state.start_by_unix_ms > 0
            last_dropped = state.attempt - 1 if dispatched else state.attempt
            dropped += [StageAttempt(job.job_id, name, n).member for n in range(1, last_dropped + 1)]
            if dispatched:
                due[StageAttempt(job.job_id, name, state.attempt).member] = state.start_by_unix_ms
    return due, dropped


@dataclass(frozen=True)
class JobQuery:
    """Which of a tenant's jobs to list, newest first: filters combined with AND, a page of up to limit."""

    statuses: frozenset[int] = frozenset()  # JobStatus values; empty: any
    pipeline: str = ""  # empty: any
    created_after_unix_ms: int | None = None  # inclusive
    created_before_unix_ms: int | None = None  # exclusive
    limit: int = 20
    cursor: str = ""  # the previous page's next_cursor

    def matches(self, job: jobs_pb2.Job) -> bool:
        return (not self.statuses or job.status in self.statuses) and (
            not self.pipeline or job.pipeline == self.pipeline
        )


def _index_member(job: jobs_pb2.Job) -> str:
    return f"{job.created_unix_ms:0{_CREATED_DIGITS}d}:{job.job_id}"


def encode_cursor(member: str) -> str:
    return base64.urlsafe_b64encode(member.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The index member a cursor stands for; ValueError if it is not one that encode_cursor made."""
    try:
        member = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor from a previous page") from exc
    if not _INDEX_MEMBER.match(member):
        raise ValueError("not a cursor from a previous page")
    return member


def _lex_bounds(query: JobQuery) -> tuple[str, str]:
    """ZREVRANGEBYLEX's (max, min) for the query's time range and cursor (both exclusive upper bounds:
    the tighter one wins). A member is `<ms>:<id>`, so it sorts after the bare `<ms>` prefix."""
    uppers = []
    if query.created_before_unix_ms is not None:
        uppers.append(f"{query.created_before_unix_ms:0{_CREATED_DIGITS}d}")
    if query.cursor:
        uppers.append(decode_cursor(query.cursor))
    upper = f"({min(uppers)}" if uppers else "+"
    after = query.created_after_unix_ms
    lower = f"[{after:0{_CREATED_DIGITS}d}" if after is not None else "-"
    return upper, lower


def jobs_index_key(tenant: str) -> str:
    """The tenant's listing index (members `<created ms>:<job id>`, all scored 0)."""
    return f"{_PREFIX}:tenant:{tenant}:jobs"


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
    """Jobs are serialized `orate.v1.Job` messages under `orate:job:<id>`, kept for job_ttl_s, and listed
    in their tenant's index `orate:tenant:<tenant>:jobs` (see jobs_index_key), whose entries older than
    job_ttl_s are trimmed whenever it gets a new one; events are a list `orate:events:<id>` (same TTL)
    mirrored on the pub/sub channel of that name; deadline timers are the sorted set `orate:deadlines`
    (member `<job>/<stage>/<attempt>`, score in unix ms); heartbeats are `orate:beat:<job>/<stage>/<attempt>`
    = "<started ms> <beat ms>", kept for HEARTBEAT_TTL_S after the last beat."""

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
        """Atomically bind key -> job_id (SET NX, for IDEMPOTENCY_CLAIM_TTL_S until put_job keeps it).
        Returns the job id already bound, or None if this call bound it."""
        name = _idempotency_key(key)
        while True:
            if self._redis.set(name, job_id, nx=True, ex=IDEMPOTENCY_CLAIM_TTL_S):
                return None
            bound = self._redis.get(name)
            # None means the binding expired between the two calls: try to claim it again.
            if bound is not None:
                return bound.decode()

    def release_idempotency_key(self, key: str, job_id: str) -> None:
        """Undo a claim made by job_id (used when the submit could not be accepted)."""
        self._release(keys=[_idempotency_key(key)], args=[job_id])

    def put_job(self, job: jobs_pb2.Job, idempotency_key: str = "") -> None:
        """Store a new job (serialized protobuf) with the job TTL, list it in its tenant's index, and keep
        the idempotency key it claimed (claim_idempotency_key) for the idempotency TTL."""
        self.write([job], [], new=[job.job_id], claimed_keys=[idempotency_key] if idempotency_key else [])

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

    def write(
        self,
        jobs: list[jobs_pb2.Job],
        events: list[tuple[str, bytes]],
        new: Collection[str] = (),
        claimed_keys: Collection[str] = (),
    ) -> None:
        """Store the jobs with the deadline timers their stage states call for (`deadline_changes`; a
        timer already there keeps the time a scan moved it to), list the `new` ones (ids of jobs stored
        for the first time) in their tenants' indexes, take the finished ones out of their tenants' active
        sets (the concurrent-jobs quota; idempotent), then append the events to their jobs' histories (and
        publish them), and keep the new jobs' claimed idempotency keys, in one round trip: Redis runs a
        pipeline's commands in order."""
        if not jobs and not events:
            return
        pipe = self._redis.pipeline(transaction=False)
        listed: dict[str, dict[str, int]] = {}
        for job in jobs:
            pipe.set(_job_key(job.job_id), job.SerializeToString(), ex=self._settings.job_ttl_s)
            if job.tenant and job.job_id in new:
                listed.setdefault(job.tenant, {})[_index_member(job)] = 0
            if job.tenant and job.status in TERMINAL_JOB_STATUSES:
                pipe.srem(active_jobs_key(job.tenant), job.job_id)
        # Entries older than a job's lifetime go: the index stays as long as the tenant's jobs last.
        expired = f"({int(time.time() * 1000) - self._settings.job_ttl_s * 1000:0{_CREATED_DIGITS}d}"
        for tenant, members in listed.items():
            pipe.zadd(jobs_index_key(tenant), members)
            pipe.zremrangebylex(jobs_index_key(tenant), "-", expired)
            pipe.expire(jobs_index_key(tenant), self._settings.job_ttl_s)
        for key in claimed_keys:
            pipe.expire(_idempotency_key(key), self._settings.idempotency_ttl_s)
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

    def list_jobs(self, tenant: str, query: JobQuery) -> tuple[list[jobs_pb2.Job], str]:
        """A page of the tenant's jobs, newest first, and the cursor of the next page ("" at the end).

        Pages are ranges of the index below the previous page's last entry, so jobs submitted meanwhile
        (which sort before it) never shift a page: no job is skipped or repeated. Filters apply to the jobs
        as read (a job whose entry outlived it is skipped), reading on until limit jobs match, the index
        ends, or LIST_SCAN_FACTOR x limit entries were read; then the cursor continues after the last
        entry read, so a page may be short. ValueError for a cursor that is not one."""
        upper, lower = _lex_bounds(query)
        key = jobs_index_key(tenant)
        filtered = bool(query.statuses or query.pipeline)
        budget = LIST_SCAN_FACTOR * query.limit
        found: list[jobs_pb2.Job] = []
        while True:
            wanted = query.limit - len(found)
            # Filters may drop most entries: read ahead rather than take a round trip per page-full. One
            # entry more than needed tells whether the index ends with this page (then no cursor).
            chunk = min(budget, wanted * 4 if filtered else wanted + 1)
            members = [m.decode() for m in self._redis.zrevrangebylex(key, upper, lower, 0, chunk)]
            budget -= len(members)
            index_ended = len(members) < chunk
            values = self._redis.mget([_job_key(m.split(":", 1)[1]) for m in members]) if members else []
            for position, (member, data) in enumerate(zip(members, values, strict=True)):
                if data is None:
                    continue
                job = jobs_pb2.Job.FromString(data)
                if job.tenant == tenant and query.matches(job):
                    found.append(job)
                    if len(found) == query.limit:
                        last = index_ended and position == len(members) - 1
                        return found, "" if last else encode_cursor(member)
            if index_ended:
                return found, ""
            if budget == 0:
                return found, encode_cursor(members[-1])
            upper = f"({members[-1]}"

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

    def event_history(self, job_id: str) -> list[bytes]:
        """The job's stored events, oldest first."""
        return self._redis.lrange(_events_key(job_id), 0, -1)

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
