"""The engine's state machine: one job command in, the job's new state and the effects out (no I/O)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from orate.v1 import common_pb2, jobs_pb2

from orchestrator import codec
from orchestrator.pipelines import InputRef, LiteralValue, Pipeline, Source, StageRef, StageSpec
from shared import events
from shared.store import MAX_CREATED_UNIX_MS, TERMINAL_JOB_STATUSES, Heartbeat
from shared.tenants import TENANT_PATTERN

log = logging.getLogger(__name__)

OPEN_STAGE_STATUSES = frozenset({jobs_pb2.STAGE_STATUS_PENDING, jobs_pb2.STAGE_STATUS_DISPATCHED})

# Why a record went to the DLQ (the reason_kind label of orate_dlq_records_total).
DLQ_INVALID_SUBMIT = "invalid_submit"
DLQ_NOT_RETRYABLE = "not_retryable"
DLQ_RETRIES_EXHAUSTED = "retries_exhausted"
DLQ_UNRESOLVABLE = "unresolvable"
DLQ_UNDECODABLE = "undecodable"
# The label of each deadline kind (the kind label of orate_stage_deadlines_expired_total); a stage failed
# by one goes to the DLQ as "<label>_timeout".
DEADLINE_LABELS = {
    jobs_pb2.DEADLINE_KIND_SCHEDULE_TO_START: "schedule_to_start",
    jobs_pb2.DEADLINE_KIND_HEARTBEAT: "heartbeat",
    jobs_pb2.DEADLINE_KIND_START_TO_CLOSE: "start_to_close",
}


@dataclass
class DeadLetterEffect:
    kind: str
    letter: jobs_pb2.DeadLetter


@dataclass
class StageTiming:
    service: str
    stage: str
    seconds: float


@dataclass
class ExpiredDeadline:
    service: str
    kind: str


@dataclass
class Effects:
    """What applying one command asks the engine to produce, plus timings and expiries for the metrics."""

    work: list[jobs_pb2.StageWork] = field(default_factory=list)
    events: list[jobs_pb2.JobEvent] = field(default_factory=list)
    dead_letters: list[DeadLetterEffect] = field(default_factory=list)
    stage_timings: list[StageTiming] = field(default_factory=list)
    expired_deadlines: list[ExpiredDeadline] = field(default_factory=list)


def command_job_id(command: jobs_pb2.JobCommand) -> str:
    kind = command.WhichOneof("command")
    if kind == "submit":
        return command.submit.job.job_id
    if kind == "cancel":
        return command.cancel.job_id
    if kind == "stage_result":
        return command.stage_result.job_id
    if kind == "stage_deadline":
        return command.stage_deadline.job_id
    return ""


def is_terminal(job: jobs_pb2.Job) -> bool:
    return job.status in TERMINAL_JOB_STATUSES


def dispatched_state(job: jobs_pb2.Job | None, stage: str, attempt: int) -> jobs_pb2.StageState | None:
    """The stage's state if the job runs and the stage is dispatched with this attempt, else None: what a
    result or a deadline of that attempt applies to (any other is stale or a duplicate)."""
    if job is None or is_terminal(job):
        return None
    state = job.stages.get(stage)
    if state is None or state.status != jobs_pb2.STAGE_STATUS_DISPATCHED or state.attempt != attempt:
        return None
    return state


@dataclass(frozen=True)
class DeadlineCheck:
    """What a due timer found: the kind of deadline that passed, or, when none has, when to look again."""

    expired: jobs_pb2.DeadlineKind.ValueType | None = None
    look_again_unix_ms: int = 0


def judge_deadline(
    state: jobs_pb2.StageState,
    beat: Heartbeat | None,
    spec: StageSpec | None,
    now_unix_ms: int,
    grace_ms: int,
) -> DeadlineCheck | None:
    """A dispatched attempt's deadlines at now; None when they cannot be judged here (a runner took the
    work, but this engine lacks the stage's pipeline and so its limits). Without a heartbeat no runner has
    taken it: schedule-to-start applies. With one, the runner must beat within heartbeat_timeout_s and
    finish within timeout_s plus the grace of starting, whichever comes first."""
    if beat is None:
        if now_unix_ms < state.start_by_unix_ms:
            return DeadlineCheck(look_again_unix_ms=state.start_by_unix_ms)
        return DeadlineCheck(expired=jobs_pb2.DEADLINE_KIND_SCHEDULE_TO_START)
    if spec is None:
        return None
    silent_by = beat.beat_unix_ms + int(spec.heartbeat_timeout_s * 1000)
    close_by = beat.started_unix_ms + int(spec.timeout_s * 1000) + grace_ms
    if now_unix_ms < min(silent_by, close_by):
        return DeadlineCheck(look_again_unix_ms=min(silent_by, close_by))
    if silent_by <= close_by:
        return DeadlineCheck(expired=jobs_pb2.DEADLINE_KIND_HEARTBEAT)
    return DeadlineCheck(expired=jobs_pb2.DEADLINE_KIND_START_TO_CLOSE)


def deadline_reason(state: jobs_pb2.StageState, spec: StageSpec, deadline: jobs_pb2.StageDeadline) -> str:
    """Why the attempt failed, naming what was missing."""
    where = f"stage {state.name}"
    if deadline.kind == jobs_pb2.DEADLINE_KIND_SCHEDULE_TO_START:
        return f"no runner of {state.service} picked up {where} within {spec.schedule_to_start_s:g} s"
    if deadline.kind == jobs_pb2.DEADLINE_KIND_HEARTBEAT:
        silent_s = (deadline.expired_unix_ms - deadline.last_heartbeat_unix_ms) / 1000
        return f"runner of {state.service} stopped reporting on {where} (last heartbeat {silent_s:.1f} s ago)"
    running_s = (deadline.expired_unix_ms - deadline.started_unix_ms) / 1000
    return (
        f"runner of {state.service} has not finished {where} {running_s:.1f} s after starting it"
        f" (timeout_s {spec.timeout_s:g})"
    )


def _submit_problem(job: jobs_pb2.Job, pipeline: Pipeline | None) -> str:
    """Why a submitted job cannot run ("" if it can). A job must name its tenant: one produced without
    is refused rather than given to some default tenant whose keys would then see it."""
    if not re.match(TENANT_PATTERN, job.tenant):
        return f"the job names no valid tenant ({job.tenant!r} must match {TENANT_PATTERN})"
    if not 0 <= job.created_unix_ms <= MAX_CREATED_UNIX_MS:
        return f"created_unix_ms {job.created_unix_ms} is not a time in unix ms"
    if pipeline is None:
        return f"unknown pipeline {job.pipeline!r}"
    missing = pipeline.missing_inputs(job.inputs)
    return f"missing inputs {missing}" if missing else ""


class JobMachine:
    """Applies commands to jobs. A job passed in is updated in place; apply() returns it when it changed."""

    def __init__(
        self, pipelines: Mapping[str, Pipeline], jobs_topic: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._pipelines = pipelines
        self._jobs_topic = jobs_topic
        self._clock = clock

    def apply(
        self, job: jobs_pb2.Job | None, command: jobs_pb2.JobCommand, payload: bytes
    ) -> tuple[jobs_pb2.Job | None, Effects]:
        """The changed job (None when the command was ignored) and the effects; payload is the command as
        received, for dead letters."""
        effects = Effects()
        kind = command.WhichOneof("command")
        if kind == "submit":
            changed = self._submit(job, command.submit.job, payload, effects)
        elif kind == "cancel":
            changed = self._cancel(job, command.cancel, effects)
        elif kind == "stage_result":
            changed = self._stage_result(job, command.stage_result, payload, effects)
        elif kind == "stage_deadline":
            changed = self._stage_deadline(job, command.stage_deadline, payload, effects)
        else:
            raise ValueError("empty command")
        return changed, effects

    # ---- commands -------------------------------------------------------------------------------------

    def _submit(
        self, current: jobs_pb2.Job | None, submitted: jobs_pb2.Job, payload: bytes, effects: Effects
    ) -> jobs_pb2.Job | None:
        if current is not None and current.status != jobs_pb2.JOB_STATUS_QUEUED:
            log.info(
                "job %s: submit replayed or superseded (status %s), ignored", submitted.job_id, current.status
            )
            return None
        job = jobs_pb2.Job()
        job.CopyFrom(submitted)
        if not job.created_unix_ms:
            job.created_unix_ms = self._now_ms()
        # The API validated its submits; commands produced straight to Kafka are checked here.
        pipeline = self._pipelines.get(job.pipeline)
        reason = _submit_problem(job, pipeline)
        if pipeline is None or reason:
            if not re.match(TENANT_PATTERN, job.tenant):
                job.tenant = ""  # no tenant's: a name like that makes no Redis key or metric label
            self._dead_letter(job, None, DLQ_INVALID_SUBMIT, reason, payload, effects)
            self._fail_job(job, reason, effects)
            return job
        job.status = jobs_pb2.JOB_STATUS_RUNNING
        codec.replace_map(job.stages, pipeline.pending_stages())
        effects.events.append(self._event(job, events.JOB_ACCEPTED))
        self._dispatch_ready(job, pipeline, payload, effects)
        return job

    def _cancel(
        self, job: jobs_pb2.Job | None, cancel: jobs_pb2.CancelJob, effects: Effects
    ) -> jobs_pb2.Job | None:
        if job is None or is_terminal(job):
            log.info("job %s: cancel for an unknown or finished job, ignored", cancel.job_id)
            return None
        job.status = jobs_pb2.JOB_STATUS_CANCELLED
        job.error = cancel.reason or "cancelled"
        self._close_job(job)
        effects.events.append(self._event(job, events.JOB_CANCELLED, error=job.error))
        return job

    def _stage_result(
        self, job: jobs_pb2.Job | None, result: jobs_pb2.StageResult, payload: bytes, effects: Effects
    ) -> jobs_pb2.Job | None:
        state = dispatched_state(job, result.stage, result.attempt)
        if job is None or state is None:
            log.info(
                "job %s: stale or duplicate result of %s#%d, ignored",
                result.job_id,
                result.stage,
                result.attempt,
            )
            return None
        now_ms = self._now_ms()
        effects.stage_timings.append(
            StageTiming(state.service, state.name, max(0, now_ms - state.dispatched_unix_ms) / 1000)
        )
        state.model_latency_ms = result.model_latency_ms
        state.started_unix_ms = result.started_unix_ms
        pipeline = self._pipelines.get(job.pipeline)
        if pipeline is None:
            self._fail_job(job, f"pipeline {job.pipeline!r} is no longer loaded", effects)
            return job
        if result.ok:
            state.status = jobs_pb2.STAGE_STATUS_SUCCEEDED
            state.finished_unix_ms = now_ms
            state.error = ""
            codec.replace_map(state.outputs, result.outputs)
            effects.events.append(self._event(job, events.STAGE_COMPLETED, state, outputs=result.outputs))
            if all(s.status == jobs_pb2.STAGE_STATUS_SUCCEEDED for s in job.stages.values()):
                self._complete(job, pipeline, payload, effects)
            else:
                self._dispatch_ready(job, pipeline, payload, effects)
            return job
        kind = DLQ_NOT_RETRYABLE if not result.retryable else DLQ_RETRIES_EXHAUSTED
        self._retry_or_fail(job, pipeline, state, result.retryable, result.error, kind, payload, effects)
        return job

    def _stage_deadline(
        self, job: jobs_pb2.Job | None, deadline: jobs_pb2.StageDeadline, payload: bytes, effects: Effects
    ) -> jobs_pb2.Job | None:
        state = dispatched_state(job, deadline.stage, deadline.attempt)
        if job is None or state is None:
            log.info(
                "job %s: deadline of %s#%d is stale or a duplicate, ignored",
                deadline.job_id,
                deadline.stage,
                deadline.attempt,
            )
            return None
        state.started_unix_ms = deadline.started_unix_ms
        pipeline = self._pipelines.get(job.pipeline)
        if pipeline is None:
            self._fail_job(job, f"pipeline {job.pipeline!r} is no longer loaded", effects)
            return job
        reason = deadline_reason(state, pipeline.stage(state.name), deadline)
        label = DEADLINE_LABELS[deadline.kind]
        effects.expired_deadlines.append(ExpiredDeadline(state.service, label))
        self._retry_or_fail(job, pipeline, state, True, reason, f"{label}_timeout", payload, effects)
        return job

    # ---- transitions ----------------------------------------------------------------------------------

    def _retry_or_fail(
        self,
        job: jobs_pb2.Job,
        pipeline: Pipeline,
        state: jobs_pb2.StageState,
        retryable: bool,
        reason: str,
        dlq_kind: str,
        payload: bytes,
        effects: Effects,
    ) -> None:
        """A failed attempt: dispatch the next one after the backoff while attempts are left and the
        failure is retryable, else fail the stage (dead-lettered as dlq_kind) and the job."""
        spec = pipeline.stage(state.name)
        if retryable and state.attempt < spec.max_attempts:
            state.error = reason
            effects.events.append(self._event(job, events.STAGE_RETRYING, state, error=reason))
            not_before_ms = self._now_ms() + int(spec.backoff_s * 2 ** (state.attempt - 1) * 1000)
            self._dispatch(job, pipeline, spec, state.attempt + 1, not_before_ms, payload, effects)
            return
        self._fail_stage(job, state, dlq_kind, reason, payload, effects)

    def _dispatch_ready(
        self, job: jobs_pb2.Job, pipeline: Pipeline, payload: bytes, effects: Effects
    ) -> None:
        statuses = {name: state.status for name, state in job.stages.items()}
        for spec in pipeline.ready_stages(statuses):
            self._dispatch(job, pipeline, spec, 1, 0, payload, effects)
            if is_terminal(job):
                return

    def _dispatch(
        self,
        job: jobs_pb2.Job,
        pipeline: Pipeline,
        spec: StageSpec,
        attempt: int,
        not_before_unix_ms: int,
        payload: bytes,
        effects: Effects,
    ) -> None:
        state = job.stages[spec.name]
        state.attempt = attempt
        try:
            request = {
                path: value
                for path, source in spec.sources().items()
                if (value := self._resolve(job, pipeline, source)) is not None
            }
        except KeyError as exc:
            reason = f"cannot build the request: {exc.args[0]}"
            self._fail_stage(job, state, DLQ_UNRESOLVABLE, reason, payload, effects)
            return
        state.status = jobs_pb2.STAGE_STATUS_DISPATCHED
        state.dispatched_unix_ms = self._now_ms()
        state.finished_unix_ms = 0
        state.started_unix_ms = 0
        # The deadline timer of this attempt (JobStore.write sets it from here): the backoff is not queueing.
        start_after_ms = max(state.dispatched_unix_ms, not_before_unix_ms)
        state.start_by_unix_ms = start_after_ms + int(spec.schedule_to_start_s * 1000)
        effects.work.append(
            jobs_pb2.StageWork(
                job_id=job.job_id,
                stage=spec.name,
                service=spec.service,
                attempt=attempt,
                request=request,
                timeout_s=spec.timeout_s,
                not_before_unix_ms=not_before_unix_ms,
                heartbeat_timeout_s=spec.heartbeat_timeout_s,
            )
        )
        effects.events.append(self._event(job, events.STAGE_STARTED, state))

    def _complete(self, job: jobs_pb2.Job, pipeline: Pipeline, payload: bytes, effects: Effects) -> None:
        try:
            outputs = {
                name: value
                for name, source in pipeline.output_sources().items()
                if (value := self._resolve(job, pipeline, source)) is not None
            }
        except KeyError as exc:
            reason = f"cannot build the job outputs: {exc.args[0]}"
            self._dead_letter(job, None, DLQ_UNRESOLVABLE, reason, payload, effects)
            self._fail_job(job, reason, effects)
            return
        codec.replace_map(job.outputs, outputs)
        job.status = jobs_pb2.JOB_STATUS_SUCCEEDED
        job.finished_unix_ms = self._now_ms()
        effects.events.append(self._event(job, events.JOB_COMPLETED, outputs=job.outputs))

    def _fail_stage(
        self,
        job: jobs_pb2.Job,
        state: jobs_pb2.StageState,
        kind: str,
        reason: str,
        payload: bytes,
        effects: Effects,
    ) -> None:
        state.status = jobs_pb2.STAGE_STATUS_FAILED
        state.finished_unix_ms = self._now_ms()
        state.error = reason
        self._dead_letter(job, state, kind, reason, payload, effects)
        effects.events.append(self._event(job, events.STAGE_FAILED, state, error=reason))
        self._fail_job(job, f"stage {state.name!r} failed: {reason}", effects)

    def _fail_job(self, job: jobs_pb2.Job, reason: str, effects: Effects) -> None:
        job.status = jobs_pb2.JOB_STATUS_FAILED
        job.error = reason
        self._close_job(job)
        effects.events.append(self._event(job, events.JOB_FAILED, error=reason))

    def _close_job(self, job: jobs_pb2.Job) -> None:
        """Stamp the finish time and cancel the stages still open (their late results are ignored)."""
        job.finished_unix_ms = self._now_ms()
        for state in job.stages.values():
            if state.status in OPEN_STAGE_STATUSES:
                state.status = jobs_pb2.STAGE_STATUS_CANCELLED

    # ---- helpers --------------------------------------------------------------------------------------

    def _resolve(self, job: jobs_pb2.Job, pipeline: Pipeline, source: Source) -> common_pb2.Value | None:
        """The value of a source; None for an optional input that was not given (the field stays unset)."""
        if isinstance(source, InputRef):
            if source.name in job.inputs:
                return job.inputs[source.name]
            default = pipeline.inputs[source.name].default
            return None if default is None else codec.to_value(default)
        if isinstance(source, StageRef):
            return codec.resolve_output(job.stages[source.stage].outputs, source.path)
        assert isinstance(source, LiteralValue)
        return codec.to_value(source.value)

    def _dead_letter(
        self,
        job: jobs_pb2.Job,
        state: jobs_pb2.StageState | None,
        kind: str,
        reason: str,
        payload: bytes,
        effects: Effects,
    ) -> None:
        letter = jobs_pb2.DeadLetter(
            job_id=job.job_id,
            reason=reason,
            source_topic=self._jobs_topic,
            payload=payload,
            time_unix_ms=self._now_ms(),
        )
        if state is not None:
            letter.stage, letter.service, letter.attempts = state.name, state.service, state.attempt
        effects.dead_letters.append(DeadLetterEffect(kind, letter))

    def _event(
        self,
        job: jobs_pb2.Job,
        event_type: str,
        state: jobs_pb2.StageState | None = None,
        error: str = "",
        outputs: Mapping[str, common_pb2.Value] | None = None,
    ) -> jobs_pb2.JobEvent:
        return jobs_pb2.JobEvent(
            job_id=job.job_id,
            type=event_type,
            pipeline=job.pipeline,
            stage=state.name if state is not None else "",
            attempt=state.attempt if state is not None else 0,
            status=job.status,
            error=error,
            outputs=outputs or {},
            time_unix_ms=self._now_ms(),
            tenant=job.tenant,
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
