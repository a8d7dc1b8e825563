"""In-memory stand-ins for the bus, the job store, the tenants and the artifact store, plus the test
pipelines (built on the orate.v1 model messages), so the orchestrator's logic is tested without a broker or
Redis. (A module of its own rather than conftest.py: test modules import it, and `conftest` is a name every
folder uses.)"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from orate.v1 import common_pb2, jobs_pb2
from orchestrator.pipelines import Pipeline, check_services

from shared.artifacts import ArtifactNotFound, ArtifactStore
from shared.bus import BusError, Record
from shared.events import TERMINAL_TYPES, from_cloudevent
from shared.serving.deployments import DeploymentsFile, DeploymentSpec
from shared.store import (
    TERMINAL_JOB_STATUSES,
    Heartbeat,
    JobQuery,
    StageAttempt,
    deadline_changes,
    decode_cursor,
    encode_cursor,
)
from shared.tenants import QuotaExceeded

SERVICES = {
    "tts": ("orate.v1.TtsGestureRequest", "orate.v1.TtsGestureResponse"),
    "face": ("orate.v1.FaceVqvaeRequest", "orate.v1.FaceVqvaeResponse"),
    "asr": ("orate.v1.AsrSactcRequest", "orate.v1.AsrSactcResponse"),
    "render": ("orate.v1.NerfRenderRequest", "orate.v1.NerfRenderResponse"),
}
DEPLOYMENTS = DeploymentsFile(
    deployments=[
        DeploymentSpec(service=name, backend="ray", predictor="x:Y", request_type=req, response_type=resp)
        for name, (req, resp) in SERVICES.items()
    ]
)

# tts -> face: a two-stage chain passing an artifact.
TALK = {
    "name": "talk",
    "inputs": {
        "text": {"type": "text", "required": True, "min_length": 1, "max_length": 200},
        "voice": {"type": "voice", "default": "flite-kal", "choices": ["flite-kal", "flite-slt"]},
        "samples": {"type": "number", "default": 1},
    },
    "stages": [
        {"name": "speak", "service": "tts", "request": {"text": "$inputs.text", "voice": "$inputs.voice"}},
        {
            "name": "animate",
            "service": "face",
            "request": {
                "audio.data": "$stages.speak.audio.data",
                "num_samples": "$inputs.samples",
                "emotion": "neutral",
            },
            "max_attempts": 3,
            "backoff_s": 0.5,
        },
    ],
    "outputs": {"audio": "$stages.speak.audio.data", "motion": "$stages.animate.samples.0.data_f32"},
}

# tts -> (face, asr) -> render: fan-out, then fan-in (render needs asr explicitly).
PERFORM = {
    "name": "perform",
    "inputs": {"text": {"type": "text", "required": True}},
    "stages": [
        {"name": "speak", "service": "tts", "request": {"text": "$inputs.text"}},
        {"name": "animate", "service": "face", "request": {"audio.data": "$stages.speak.audio.data"}},
        {"name": "check", "service": "asr", "request": {"audio.data": "$stages.speak.audio.data"}},
        {
            "name": "render",
            "service": "render",
            "needs": ["check"],
            "request": {
                "body": "$stages.speak.response.body",
                "body.data_f32": "$stages.speak.body.data_f32",
                "face.data_f32": "$stages.animate.samples.0.data_f32",
                "audio.data": "$stages.speak.audio.data",
            },
        },
    ],
    "outputs": {"video": "$stages.render.video.data", "transcript": "$stages.check.response.speakers"},
}

# One asr stage with short deadlines and few attempts, for the deadline tests.
LISTEN = {
    "name": "listen",
    "inputs": {"text": {"type": "text"}},
    "stages": [
        {
            "name": "asr",
            "service": "asr",
            "request": {"beam_size": 4},
            "timeout_s": 60,
            "max_attempts": 2,
            "backoff_s": 1,
            "schedule_to_start_s": 30,
            "heartbeat_timeout_s": 10,
        }
    ],
    "outputs": {"speakers": "$stages.asr.response.speakers"},
}

# Audio upload -> asr, for the API tests.
TRANSCRIBE = {
    "name": "transcribe",
    "inputs": {
        "audio": {"type": "audio", "required": True, "max_seconds": 5},
        "beam": {"type": "number", "default": 4},
    },
    "stages": [
        {
            "name": "asr",
            "service": "asr",
            "request": {"audio.data": "$inputs.audio", "beam_size": "$inputs.beam"},
        }
    ],
    "outputs": {"speakers": "$stages.asr.response.speakers"},
}


def make_pipelines(*definitions: dict[str, Any]) -> dict[str, Pipeline]:
    pipelines = {}
    for definition in definitions:
        pipeline = Pipeline.model_validate(definition)
        check_services(pipeline, DEPLOYMENTS)
        pipelines[pipeline.name] = pipeline
    return pipelines


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class OperationLog(list[str]):
    """The order in which the fakes were used (produce, flush, store writes, commits)."""


class FakeProducer:
    def __init__(self, log: OperationLog) -> None:
        self.log = log
        self.sent: list[Record] = []
        self._pending: list[Callable[[Exception | None], None]] = []
        self.fail_next_flush = False

    def send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: dict[str, str] | None = None,
        on_delivery: Callable[[Exception | None], None] | None = None,
    ) -> None:
        self.log.append(f"send {topic}")
        self.sent.append(Record(topic, 0, len(self.sent), key, value, dict(headers or {})))
        if on_delivery is not None:
            self._pending.append(on_delivery)

    def send_acknowledged(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.send(topic, key, value, headers)
        self.flush(timeout_s)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve the delivery reports of everything sent so far (all acknowledged)."""
        pending, self._pending = self._pending, []
        for callback in pending:
            callback(None)

    def flush(self, timeout_s: float = 10.0) -> None:
        self.log.append("flush")
        error = BusError("broker down") if self.fail_next_flush else None
        self.fail_next_flush = False
        for callback in self._pending:
            callback(error)
        self._pending.clear()
        if error is not None:
            raise error

    def close(self) -> None:
        pass

    def take(self) -> list[Record]:
        sent, self.sent = self.sent, []
        return sent


class FakeConsumer:
    def __init__(self, log: OperationLog) -> None:
        self.log = log
        self.queue: list[Record] = []
        self.done: list[Record] = []

    def feed(self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None) -> None:
        self.queue.append(Record(topic, 0, len(self.queue) + len(self.done), key, value, headers or {}))

    def poll_batch(self, max_records: int = 100, timeout_s: float = 0.1) -> list[Record]:
        batch, self.queue = self.queue[:max_records], self.queue[max_records:]
        return batch

    def processed(self, record: Record) -> None:
        self.log.append("processed")
        self.done.append(record)

    def lag(self) -> dict[tuple[str, int], int]:
        return {}


class FakeStore:
    def __init__(self, log: OperationLog) -> None:
        self.log = log
        self.jobs: dict[str, bytes] = {}
        self.keys: dict[str, str] = {}
        self.events: dict[str, list[bytes]] = {}
        self.timers: dict[str, int] = {}  # deadline timer member -> due unix ms, as the sorted set
        self.beats: dict[StageAttempt, Heartbeat] = {}
        self.listed: dict[str, set[str]] = {}  # tenant -> index members `<created ms>:<job id>`
        self.finished: list[str] = []  # job ids the writes took out of their tenants' active sets
        self.fail_next_put = False

    def ping(self) -> bool:
        return True

    def claim_idempotency_key(self, key: str, job_id: str) -> str | None:
        existing = self.keys.setdefault(key, job_id)
        return None if existing == job_id else existing

    def release_idempotency_key(self, key: str, job_id: str) -> None:
        if self.keys.get(key) == job_id:
            del self.keys[key]

    def put_job(self, job: jobs_pb2.Job, idempotency_key: str = "") -> None:
        self.write([job], [], new=[job.job_id])

    def get_job(self, job_id: str) -> jobs_pb2.Job | None:
        data = self.jobs.get(job_id)
        return None if data is None else jobs_pb2.Job.FromString(data)

    def get_jobs(self, job_ids: list[str]) -> dict[str, jobs_pb2.Job]:
        return {job_id: job for job_id in job_ids if (job := self.get_job(job_id)) is not None}

    def get_jobs_and_beat(
        self, job_ids: list[str], beats: dict[StageAttempt, Heartbeat]
    ) -> dict[str, jobs_pb2.Job]:
        self.beat(beats)
        return self.get_jobs(job_ids)

    def beat(self, beats: dict[StageAttempt, Heartbeat]) -> None:
        self.beats.update(beats)

    def claim_due_deadlines(self, now_unix_ms: int, lease_ms: int, limit: int) -> list[StageAttempt]:
        due = sorted((at, member) for member, at in self.timers.items() if at <= now_unix_ms)[:limit]
        for _, member in due:
            self.timers[member] = now_unix_ms + lease_ms
        return [StageAttempt.parse(member) for _, member in due]

    def deadline_facts(
        self, attempts: list[StageAttempt]
    ) -> tuple[dict[str, jobs_pb2.Job], dict[StageAttempt, Heartbeat]]:
        jobs = self.get_jobs(sorted({attempt.job_id for attempt in attempts}))
        return jobs, {attempt: self.beats[attempt] for attempt in attempts if attempt in self.beats}

    def settle_deadlines(self, later: dict[StageAttempt, int], done: list[StageAttempt]) -> None:
        for attempt, at in later.items():
            if attempt.member in self.timers:
                self.timers[attempt.member] = at
        for attempt in done:
            self.timers.pop(attempt.member, None)

    def deadlines(self) -> dict[StageAttempt, int]:
        return {StageAttempt.parse(member): at for member, at in self.timers.items()}

    def write(
        self, jobs: list[jobs_pb2.Job], events: list[tuple[str, bytes]], new: Collection[str] = ()
    ) -> None:
        if self.fail_next_put:
            self.fail_next_put = False
            raise ConnectionError("redis down")
        self.log.append("put_jobs")
        for job in jobs:
            self.jobs[job.job_id] = job.SerializeToString()
            if job.tenant and job.job_id in new:
                self.listed.setdefault(job.tenant, set()).add(f"{job.created_unix_ms:013d}:{job.job_id}")
            if job.tenant and job.status in TERMINAL_JOB_STATUSES:
                self.finished.append(job.job_id)
        # As the real store: in the same write, a timer already there keeps its time (ZADD NX).
        due, dropped = deadline_changes(jobs)
        for member, at in due.items():
            self.timers.setdefault(member, at)
        for member in dropped:
            self.timers.pop(member, None)
        self.log.append("append_events")
        for job_id, data in events:
            self.events.setdefault(job_id, []).append(data)

    def list_jobs(self, tenant: str, query: JobQuery) -> tuple[list[jobs_pb2.Job], str]:
        """As the real store, without its scan budget: every matching job below the cursor, a page of them."""
        below = decode_cursor(query.cursor) if query.cursor else None
        after, before = query.created_after_unix_ms, query.created_before_unix_ms
        matching = []
        for member in sorted(self.listed.get(tenant, ()), reverse=True):
            created, job_id = int(member[:13]), member[14:]
            job = self.get_job(job_id)
            if (
                (below is None or member < below)
                and (after is None or created >= after)
                and (before is None or created < before)
                and job is not None
                and query.matches(job)
            ):
                matching.append((member, job))
        page = matching[: query.limit]
        more = len(matching) > query.limit
        return [job for _, job in page], encode_cursor(page[-1][0]) if more else ""

    def event_history(self, job_id: str) -> list[bytes]:
        return list(self.events.get(job_id, []))

    async def follow_events(self, job_id: str, timeout_s: float) -> AsyncIterator[bytes]:
        for data in self.events.get(job_id, []):
            yield data
            if from_cloudevent(data)["type"] in TERMINAL_TYPES:
                return


class FakeTenants:
    """API keys (whole key -> tenant) and the concurrent-jobs quota, as shared.tenants.Tenants keeps them."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}
        self.active: dict[str, set[str]] = {}
        self.concurrent_jobs = 1000
        self.admitted: list[tuple[str, str, int]] = []  # (tenant, job id, upload bytes)
        self.released: list[tuple[str, str, int]] = []

    def key_for(self, tenant: str) -> str:
        key = f"ork_{len(self.keys):016x}_{tenant}"
        self.keys[key] = tenant
        return key

    def authenticate(self, token: str) -> str | None:
        return self.keys.get(token)

    def admit(self, tenant: str, job_id: str, upload_bytes: int, now: float | None = None) -> None:
        active = self.active.setdefault(tenant, set())
        if len(active) >= self.concurrent_jobs:
            raise QuotaExceeded(tenant, "concurrent_jobs", self.concurrent_jobs, 1)
        active.add(job_id)
        self.admitted.append((tenant, job_id, upload_bytes))

    def release(self, tenant: str, job_id: str, upload_bytes: int, now: float) -> None:
        self.active[tenant].discard(job_id)
        self.released.append((tenant, job_id, upload_bytes))


class MemoryArtifacts(ArtifactStore):
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(
        self, key: str, data: bytes, media_type: str = "application/octet-stream"
    ) -> common_pb2.ArtifactRef:
        uri = f"mem://{key}"
        self.blobs[uri] = data
        return common_pb2.ArtifactRef(
            uri=uri, media_type=media_type, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
        )

    def get(self, ref: common_pb2.ArtifactRef | str) -> bytes:
        uri = ref if isinstance(ref, str) else ref.uri
        if uri not in self.blobs:
            raise ArtifactNotFound(uri)
        return self.blobs[uri]

    def exists(self, ref: common_pb2.ArtifactRef | str) -> bool:
        return (ref if isinstance(ref, str) else ref.uri) in self.blobs
