"""Redis store for jobs (with their stage states), idempotency keys and each job's event history."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from orate.v1 import jobs_pb2

from shared.settings import RedisSettings


class JobStore:
    def __init__(self, settings: RedisSettings) -> None: ...

    def ping(self) -> bool: ...

    def claim_idempotency_key(self, key: str, job_id: str) -> str | None:
        """Atomically bind key -> job_id (SET NX with TTL). Returns the job id already bound, or None
        if this call bound it."""

    def release_idempotency_key(self, key: str, job_id: str) -> None:
        """Undo a claim made by job_id (used when the submit could not be accepted)."""

    def put_job(self, job: jobs_pb2.Job) -> None:
        """Store the job (serialized protobuf) with the job TTL."""

    def put_jobs(self, jobs: list[jobs_pb2.Job]) -> None:
        """Store several jobs in one round trip (pipelined)."""

    def get_job(self, job_id: str) -> jobs_pb2.Job | None: ...

    def get_jobs(self, job_ids: list[str]) -> dict[str, jobs_pb2.Job]:
        """Jobs found, by id, in one round trip."""

    def append_events(self, events: list[tuple[str, bytes]]) -> None:
        """Append (job_id, CloudEvent JSON) pairs to each job's history and publish them on the
        job's channel, pipelined."""

    def event_history(self, job_id: str) -> list[bytes]: ...

    def follow_events(self, job_id: str, timeout_s: float) -> Iterator[bytes]:
        """Every event of the job: the history first, then new ones as they are published, until
        the job's terminal event or timeout_s of silence. Subscribes before reading the history
        and drops duplicates, so nothing published in between is missed."""

    def incr(self, counter: str, by: int = 1) -> int: ...

    def close(self) -> None: ...


UpdateFn = Callable[[jobs_pb2.Job], bool]
