"""Redis store for jobs (with their stage states), idempotency keys and each job's event history."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable

import anyio
import redis
import redis.asyncio
from orate.v1 import jobs_pb2

from shared.events import TERMINAL_TYPES
from shared.settings import RedisSettings

_PREFIX = "orate"
# Deletes an idempotency key only while it still names the job that claimed it.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _job_key(job_id: str) -> str:
    return f"{_PREFIX}:job:{job_id}"


def _idempotency_key(key: str) -> str:
    return f"{_PREFIX}:idem:{key}"


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
    events are a list `orate:events:<id>` (same TTL) mirrored on the pub/sub channel of that name."""

    def __init__(self, settings: RedisSettings) -> None:
        self._settings = settings
        self._redis = redis.Redis.from_url(settings.url, socket_connect_timeout=5.0)
        self._release = self._redis.register_script(_RELEASE_SCRIPT)

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

    def write(self, jobs: list[jobs_pb2.Job], events: list[tuple[str, bytes]]) -> None:
        """Store the jobs, then append the events to their jobs' histories (and publish them), in one
        round trip: Redis runs a pipeline's commands in order."""
        if not jobs and not events:
            return
        pipe = self._redis.pipeline(transaction=False)
        for job in jobs:
            pipe.set(_job_key(job.job_id), job.SerializeToString(), ex=self._settings.job_ttl_s)
        for job_id, data in events:
            # History first: a follower that sees the publish can always find the event in the list.
            pipe.rpush(_events_key(job_id), data)
            pipe.publish(_events_key(job_id), data)
        for job_id in dict.fromkeys(job_id for job_id, _ in events):
            pipe.expire(_events_key(job_id), self._settings.job_ttl_s)
        pipe.execute()

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
