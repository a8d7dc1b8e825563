"""The engine's state machine, driven as a table: commands in, the records it produces out; and its
deadlines: timers written with the jobs, the scanner that turns passed ones into commands, and their
retries and failures."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from orate.v1 import common_pb2, jobs_pb2, models_pb2
from orchestrator import codec, metrics
from orchestrator.engine import DeadlineScanner, Engine
from orchestrator.settings import EngineSettings
from orchestrator.transitions import JobMachine
from orchestrator_fakes import (
    LISTEN,
    PERFORM,
    TALK,
    Clock,
    FakeConsumer,
    FakeProducer,
    FakeStore,
    make_pipelines,
)

from shared.bus import Record, Topics
from shared.events import from_cloudevent
from shared.store import QUEUED_RESEND_MS, SUBMIT_TIMER, Heartbeat, StageAttempt

TOPICS = Topics("t")
JOB = "job-1"
TENANT = "acme"


def outputs_of(stage: str, response: Message) -> dict[str, common_pb2.Value]:
    """Stage outputs as a runner would report them (artifacts by field path, the rest as `response`)."""
    blobs, json_response = codec.split_response(response)
    outputs = {
        blob.path: common_pb2.Value(artifact=common_pb2.ArtifactRef(uri=f"mem://{stage}/{blob.path}"))
        for blob in blobs
    }
    outputs[codec.RESPONSE] = codec.to_value(json_response)
    return outputs


MOTION = common_pb2.Motion(layout="smplx-55-rot6d", fps=30, frames=2, dims=3, data_f32=b"\0" * 24)
STAGE_RESPONSES = {
    "speak": models_pb2.TtsGestureResponse(audio=common_pb2.Audio(data=b"RIFF"), body=MOTION, face=MOTION),
    "animate": models_pb2.FaceVqvaeResponse(samples=[MOTION]),
    "check": models_pb2.AsrSactcResponse(speakers=[models_pb2.SpeakerTranscript(speaker="spk1", text="hi")]),
    "render": models_pb2.NerfRenderResponse(video=common_pb2.Video(data=b"mp4", duration_s=1)),
    "asr": models_pb2.AsrSactcResponse(speakers=[models_pb2.SpeakerTranscript(speaker="spk1", text="hi")]),
}
# The engine settings of the harness: start-to-close is timeout_s + 5 s.
ENGINE_SETTINGS = EngineSettings(start_to_close_grace_s=5, deadline_resend_s=5)


def submit(
    pipeline: str = "talk", job_id: str = JOB, tenant: str = TENANT, **inputs: object
) -> jobs_pb2.JobCommand:
    job = jobs_pb2.Job(
        job_id=job_id, pipeline=pipeline, status=jobs_pb2.JOB_STATUS_QUEUED, created_unix_ms=1, tenant=tenant
    )
    for name, value in ({"text": "hello"} | inputs).items():
        if value is not None:
            job.inputs[name].CopyFrom(codec.to_value(value))
    return jobs_pb2.JobCommand(submit=jobs_pb2.SubmitJob(job=job))


def ok(
    stage: str, attempt: int = 1, outputs: dict[str, common_pb2.Value] | None = None
) -> jobs_pb2.JobCommand:
    result = jobs_pb2.StageResult(job_id=JOB, stage=stage, attempt=attempt, ok=True, model_latency_ms=3)
    codec.replace_map(
        result.outputs, outputs if outputs is not None else outputs_of(stage, STAGE_RESPONSES[stage])
    )
    return jobs_pb2.JobCommand(stage_result=result)


def failed(stage: str, attempt: int = 1, retryable: bool = True) -> jobs_pb2.JobCommand:
    result = jobs_pb2.StageResult(
        job_id=JOB, stage=stage, attempt=attempt, ok=False, error="model exploded", retryable=retryable
    )
    return jobs_pb2.JobCommand(stage_result=result)


def cancel() -> jobs_pb2.JobCommand:
    return jobs_pb2.JobCommand(cancel=jobs_pb2.CancelJob(job_id=JOB, reason="user asked"))


def deadline(
    stage: str, attempt: int = 1, kind: int = jobs_pb2.DEADLINE_KIND_SCHEDULE_TO_START
) -> jobs_pb2.JobCommand:
    expired = jobs_pb2.StageDeadline(job_id=JOB, stage=stage, attempt=attempt, kind=kind, expired_unix_ms=1)
    return jobs_pb2.JobCommand(stage_deadline=expired)


def describe(record: Record) -> str:
    """work:<stage>#<attempt> | dlq:<stage> | <event type without 'orate.'>[:<stage>#<attempt>]"""
    if record.topic.startswith(TOPICS.work("")):
        work = jobs_pb2.StageWork.FromString(record.value)
        return f"work:{work.stage}#{work.attempt}"
    if record.topic == TOPICS.dlq:
        return f"dlq:{jobs_pb2.DeadLetter.FromString(record.value).stage}"
    data = from_cloudevent(record.value)["data"]
    kind = data["type"].removeprefix("orate.")
    return f"{kind}:{data['stage']}#{data['attempt']}" if data.get("stage") else kind


class Harness:
    def __init__(
        self, consumer: FakeConsumer, producer: FakeProducer, store: FakeStore, clock: Clock
    ) -> None:
        self.consumer, self.producer, self.store, self.clock = consumer, producer, store, clock
        pipelines = make_pipelines(TALK, PERFORM, LISTEN)
        machine = JobMachine(pipelines, TOPICS.jobs, clock)
        self.scanner = DeadlineScanner(pipelines, store, producer, TOPICS, ENGINE_SETTINGS, clock)
        self.engine = Engine(machine, consumer, producer, store, TOPICS, self.scanner)

    def step(self, *commands: jobs_pb2.JobCommand | bytes) -> list[str]:
        for command in commands:
            value = command if isinstance(command, bytes) else command.SerializeToString()
            self.consumer.feed(TOPICS.jobs, JOB, value)
        self.engine.run_once()
        self.last = self.producer.take()
        return [describe(record) for record in self.last]

    def works(self) -> list[jobs_pb2.StageWork]:
        """The work items of the last step."""
        return [
            jobs_pb2.StageWork.FromString(r.value) for r in self.last if r.topic.startswith(TOPICS.work(""))
        ]

    def job(self) -> jobs_pb2.Job:
        job = self.store.get_job(JOB)
        assert job is not None
        return job

    def scan(self) -> list[jobs_pb2.JobCommand]:
        """Run the deadline scanner; the commands it sent (not applied yet)."""
        self.scanner.scan()
        return [
            jobs_pb2.JobCommand.FromString(r.value) for r in self.producer.take() if r.topic == TOPICS.jobs
        ]

    def expire(self) -> list[str]:
        """Run the deadline scanner and apply what it sent: the records that produced."""
        commands = self.scan()
        return self.step(*commands) if commands else []

    def beat(self, stage: str, attempt: int, started_unix_ms: int | None = None) -> None:
        """A runner's heartbeat now (having started now, unless said otherwise)."""
        now_ms = self.now_ms()
        self.store.beat({StageAttempt(JOB, stage, attempt): Heartbeat(started_unix_ms or now_ms, now_ms)})

    def now_ms(self) -> int:
        return int(self.clock.now * 1000)

    def timers(self) -> dict[str, int]:
        """The deadline timers: <stage>#<attempt> -> due, in ms after the clock's start."""
        return {f"{a.stage}#{a.attempt}": at - START_MS for a, at in self.store.deadlines().items()}

    def errors(self, event_type: str) -> list[str]:
        """The error of each event of this type in the last step."""
        return [
            data["error"]
            for r in self.last
            if r.topic == TOPICS.events and (data := from_cloudevent(r.value)["data"])["type"] == event_type
        ]


START_MS = int(Clock().now * 1000)


@pytest.fixture
def harness(consumer: FakeConsumer, producer: FakeProducer, store: FakeStore, clock: Clock) -> Harness:
    return Harness(consumer, producer, store, clock)


SCENARIOS = {
    "two-stage happy path": [
        (submit(), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
        (ok("speak"), ["work:animate#1", "stage.completed:speak#1", "stage.started:animate#1"]),
        (ok("animate"), ["stage.completed:animate#1", "job.completed"]),
    ],
    "fan-out then fan-in": [
        (submit("perform"), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
        (
            ok("speak"),
            [
                "work:animate#1",
                "work:check#1",
                "stage.completed:speak#1",
                "stage.started:animate#1",
                "stage.started:check#1",
            ],
        ),
        (ok("animate"), ["stage.completed:animate#1"]),  # render also needs check
        (ok("check"), ["work:render#1", "stage.completed:check#1", "stage.started:render#1"]),
        (ok("render"), ["stage.completed:render#1", "job.completed"]),
    ],
    "duplicate and stale results are ignored": [
        (submit(), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
        (ok("speak"), ["work:animate#1", "stage.completed:speak#1", "stage.started:animate#1"]),
        (ok("speak"), []),
        (ok("animate", attempt=2), []),
        (ok("animate"), ["stage.completed:animate#1", "job.completed"]),
        (ok("animate"), []),
    ],
    "retry then success": [
        (submit(), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
        (ok("speak"), ["work:animate#1", "stage.completed:speak#1", "stage.started:animate#1"]),
        (failed("animate"), ["work:animate#2", "stage.retrying:animate#1", "stage.started:animate#2"]),
        (failed("animate"), []),  # the first attempt's failure again: stale
        (ok("animate", attempt=2), ["stage.completed:animate#2", "job.completed"]),
    ],
    "retries exhausted": [
        (submit(), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
        (ok("speak"), ["work:animate#1", "stage.completed:speak#1", "stage.started:animate#1"]),
        (failed("animate", 1), ["work:animate#2", "stage.retrying:animate#1", "stage.started:animate#2"]),
        (failed("animate", 2), ["work:animate#3", "stage.retrying:animate#2", "stage.started:animate#3"]),
        (failed("animate", 3), ["dlq:animate", "stage.failed:animate#3", "job.failed"]),
        (ok("animate", 3), []),
    ],
    "a non-retryable failure fails at once": [
        (submit(), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
        (failed("speak", retryable=False), ["dlq:speak", "stage.failed:speak#1", "job.failed"]),
    ],
    "cancel mid-job, then the late result is ignored": [
        (submit(), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
        (cancel(), ["job.cancelled"]),
        (ok("speak"), []),
        (cancel(), []),
    ],
    "undecodable and empty commands go to the DLQ; the loop goes on": [
        (b"\xff\xff\xff", ["dlq:"]),
        (jobs_pb2.JobCommand(), ["dlq:"]),
        (submit(), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
    ],
    "a replayed submit is ignored": [
        (submit(), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
        (submit(), []),
    ],
    "unknown pipeline": [(submit("nope"), ["dlq:", "job.failed"])],
    "missing required input": [(submit(text=None), ["dlq:", "job.failed"])],
    "an upstream output that is missing fails the stage that needs it": [
        (submit(), ["work:speak#1", "job.accepted", "stage.started:speak#1"]),
        (
            ok("speak", outputs={}),
            ["dlq:animate", "stage.completed:speak#1", "stage.failed:animate#1", "job.failed"],
        ),
    ],
}


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_commands_produce_the_expected_records(harness: Harness, steps: list) -> None:
    for number, (command, expected) in enumerate(steps, 1):
        assert harness.step(command) == expected, f"step {number}"


def test_a_batch_with_several_commands_is_applied_in_order(harness: Harness) -> None:
    produced = harness.step(submit(), ok("speak"), cancel())
    assert produced == [
        "work:speak#1",
        "job.accepted",
        "stage.started:speak#1",
        "work:animate#1",
        "stage.completed:speak#1",
        "stage.started:animate#1",
        "job.cancelled",
    ]
    assert harness.job().status == jobs_pb2.JOB_STATUS_CANCELLED


def test_finished_job_holds_stage_states_and_resolved_outputs(harness: Harness) -> None:
    harness.step(submit())
    harness.clock.now += 0.25
    harness.step(ok("speak"))
    harness.step(ok("animate"))
    job = harness.job()
    assert job.status == jobs_pb2.JOB_STATUS_SUCCEEDED
    assert {name: state.status for name, state in job.stages.items()} == {
        "speak": jobs_pb2.STAGE_STATUS_SUCCEEDED,
        "animate": jobs_pb2.STAGE_STATUS_SUCCEEDED,
    }
    speak = job.stages["speak"]
    assert speak.finished_unix_ms - speak.dispatched_unix_ms == 250
    assert speak.model_latency_ms == 3
    assert job.outputs["audio"].artifact.uri == "mem://speak/audio.data"
    assert job.outputs["motion"].artifact.uri == "mem://animate/samples.0.data_f32"


def test_work_requests_resolve_inputs_defaults_literals_and_upstream_outputs(harness: Harness) -> None:
    harness.step(submit(samples=None))
    (speak,) = harness.works()
    assert speak.service == "tts"
    assert codec.from_value(speak.request["text"]) == "hello"
    assert codec.from_value(speak.request["voice"]) == "flite-kal"  # the input's default
    harness.step(ok("speak"))
    (animate,) = harness.works()
    assert animate.request["audio.data"].artifact.uri == "mem://speak/audio.data"
    assert codec.from_value(animate.request["num_samples"]) == 1
    assert codec.from_value(animate.request["emotion"]) == "neutral"  # a literal
    assert animate.timeout_s == 60 and animate.not_before_unix_ms == 0


def test_fan_in_request_combines_json_and_artifacts_of_several_stages(harness: Harness) -> None:
    harness.step(submit("perform"))
    harness.step(ok("speak"))
    harness.step(ok("animate"))
    harness.step(ok("check"))
    (render,) = harness.works()
    assert codec.from_value(render.request["body"])["layout"] == "smplx-55-rot6d"
    assert render.request["body.data_f32"].artifact.uri == "mem://speak/body.data_f32"
    assert render.request["face.data_f32"].artifact.uri == "mem://animate/samples.0.data_f32"
    harness.step(ok("render"))
    job = harness.job()
    assert job.outputs["video"].artifact.uri == "mem://render/video.data"
    assert codec.from_value(job.outputs["transcript"]) == [
        {"speaker": "spk1", "text": "hi", "start_s": 0.0, "end_s": 0.0}
    ]


def test_retries_back_off_exponentially(harness: Harness) -> None:
    harness.step(submit())
    harness.step(ok("speak"))
    now_ms = int(harness.clock.now * 1000)
    harness.step(failed("animate", 1))
    assert [w.not_before_unix_ms - now_ms for w in harness.works()] == [500]  # backoff_s 0.5 * 2^0
    harness.step(failed("animate", 2))
    assert [w.not_before_unix_ms - now_ms for w in harness.works()] == [1000]
    assert harness.job().stages["animate"].error == "model exploded"


def test_dead_letter_carries_the_reason_and_the_command(harness: Harness) -> None:
    harness.step(submit())
    command = failed("speak", retryable=False)
    harness.step(command)
    (letter,) = [jobs_pb2.DeadLetter.FromString(r.value) for r in harness.last if r.topic == TOPICS.dlq]
    assert (letter.job_id, letter.stage, letter.service, letter.attempts) == (JOB, "speak", "tts", 1)
    assert letter.reason == "model exploded"
    assert letter.source_topic == TOPICS.jobs
    assert letter.payload == command.SerializeToString()
    job = harness.job()
    assert job.status == jobs_pb2.JOB_STATUS_FAILED
    assert "speak" in job.error and "model exploded" in job.error
    assert job.stages["animate"].status == jobs_pb2.STAGE_STATUS_CANCELLED


def test_undecodable_record_is_dead_lettered_with_its_bytes(harness: Harness) -> None:
    harness.step(b"\xff\xff\xff")
    (record,) = harness.last
    letter = jobs_pb2.DeadLetter.FromString(record.value)
    assert letter.payload == b"\xff\xff\xff" and letter.reason.startswith("not a JobCommand")
    assert harness.consumer.done  # processed, not retried forever


def test_effects_are_flushed_before_jobs_then_events_are_written_and_records_committed(
    harness: Harness,
) -> None:
    harness.step(submit())
    operations = harness.producer.log
    assert operations.index("flush") < operations.index("put_jobs") < operations.index("append_events")
    assert operations.index("append_events") < operations.index("processed")


def test_a_crash_before_the_state_write_replays_the_same_effects(harness: Harness) -> None:
    harness.store.fail_next_put = True
    harness.consumer.feed(TOPICS.jobs, JOB, submit().SerializeToString())
    with pytest.raises(ConnectionError):
        harness.engine.run_once()
    first = harness.producer.take()
    assert harness.consumer.done == []  # not committed: the broker will redeliver
    assert harness.step(submit()) == ["work:speak#1", "job.accepted", "stage.started:speak#1"]
    assert [r.value for r in harness.last] == [r.value for r in first]  # same ids, same bytes
    assert harness.timers() == {"speak#1": 60_000}  # the replay wrote the timer with the job


def test_job_stored_by_the_api_as_queued_is_started(harness: Harness) -> None:
    harness.store.put_job(submit().submit.job)
    assert harness.step(submit()) == ["work:speak#1", "job.accepted", "stage.started:speak#1"]
    assert harness.job().status == jobs_pb2.JOB_STATUS_RUNNING


# ---- tenants ----------------------------------------------------------------------------------------


def test_events_carry_the_jobs_tenant_as_a_cloudevents_extension(harness: Harness) -> None:
    harness.step(submit())
    harness.step(ok("speak"), ok("animate"))
    envelopes = [from_cloudevent(r.value) for r in harness.last if r.topic == TOPICS.events]
    assert envelopes and {(e["tenant"], e["data"]["tenant"]) for e in envelopes} == {(TENANT, TENANT)}
    assert harness.job().tenant == TENANT


def test_a_finished_job_leaves_its_tenants_active_set_in_its_final_write(harness: Harness) -> None:
    harness.step(submit())
    harness.step(ok("speak"))
    assert harness.store.finished == []
    harness.step(ok("animate"))
    assert harness.store.finished == [JOB]
    harness.step(ok("animate"))  # a duplicate changes nothing, so nothing is written again
    assert harness.store.finished == [JOB]


def test_a_job_submitted_straight_to_kafka_is_listed_once_and_one_from_the_api_is_not_relisted(
    harness: Harness,
) -> None:
    harness.step(submit())  # not stored before: the engine's write lists it
    assert harness.store.listed == {TENANT: {f"{1:013d}:{JOB}"}}
    harness.store.listed.clear()
    harness.step(ok("speak"))
    assert harness.store.listed == {}
    api_job = submit(job_id="job-2").submit.job
    harness.store.put_job(api_job)  # the API lists it
    harness.store.listed.clear()
    harness.consumer.feed(TOPICS.jobs, "job-2", submit(job_id="job-2").SerializeToString())
    harness.engine.run_once()
    assert harness.store.listed == {}


@pytest.mark.parametrize("tenant", ["", "Not A Tenant"], ids=["none", "invalid"])
def test_a_submit_without_a_valid_tenant_is_dead_lettered(harness: Harness, tenant: str) -> None:
    assert harness.step(submit(tenant=tenant)) == ["dlq:", "job.failed"]
    (letter,) = [jobs_pb2.DeadLetter.FromString(r.value) for r in harness.last if r.topic == TOPICS.dlq]
    assert "names no valid tenant" in letter.reason
    assert harness.job().status == jobs_pb2.JOB_STATUS_FAILED
    assert harness.store.listed == {}  # nobody's to list


# ---- deadlines --------------------------------------------------------------------------------------
# LISTEN's stage asr: schedule_to_start_s 30, heartbeat_timeout_s 10, timeout_s 60 (+ 5 s grace: 65 s
# start-to-close), max_attempts 2, backoff_s 1.


def dlq_count(service: str, reason_kind: str) -> float:
    return metrics.DLQ_RECORDS.labels(service, reason_kind)._value.get()


def test_schedule_to_start_expiry_retries_then_fails_naming_service_stage_and_seconds(
    harness: Harness,
) -> None:
    harness.step(submit("listen"))
    reason = "no runner of asr picked up stage asr within 30 s"
    harness.clock.now += 29.999
    assert harness.expire() == []
    harness.clock.now += 0.001
    assert harness.expire() == ["work:asr#2", "stage.retrying:asr#1", "stage.started:asr#2"]
    assert harness.errors("orate.stage.retrying") == [reason]
    assert harness.job().stages["asr"].error == reason
    assert harness.timers() == {"asr#2": 30_000 + 1_000 + 30_000}  # the backoff is not queueing
    harness.clock.now += 30.999
    assert harness.expire() == []
    dead_before = dlq_count("asr", "schedule_to_start_timeout")
    harness.clock.now += 0.001
    assert harness.expire() == ["dlq:asr", "stage.failed:asr#2", "job.failed"]
    (letter,) = [jobs_pb2.DeadLetter.FromString(r.value) for r in harness.last if r.topic == TOPICS.dlq]
    assert (letter.stage, letter.service, letter.attempts, letter.reason) == ("asr", "asr", 2, reason)
    assert dlq_count("asr", "schedule_to_start_timeout") == dead_before + 1
    job = harness.job()
    assert job.status == jobs_pb2.JOB_STATUS_FAILED and job.error == f"stage 'asr' failed: {reason}"
    assert harness.timers() == {}


def run_until_expiry(harness: Harness, beat_until_s: float, limit_s: float = 200) -> tuple[float, list[str]]:
    """From a listen job just submitted: a runner picks asr#1 up 2 s later and beats every 3 s until
    beat_until_s; the engine scans every second. When (s after the submit) a deadline expired, and what
    applying it produced."""
    start = harness.clock.now
    harness.step(submit("listen"))
    for second in range(1, int(limit_s)):
        harness.clock.now = start + second
        if second <= beat_until_s and (second - 2) % 3 == 0:
            harness.beat("asr", 1, started_unix_ms=int((start + 2) * 1000))
        produced = harness.expire()
        if produced:
            return second, produced
    raise AssertionError(f"no deadline expired within {limit_s} s")


def test_heartbeats_keep_a_long_stage_alive(harness: Harness) -> None:
    start = harness.clock.now
    harness.step(submit("listen"))
    for second in range(1, 63):  # past schedule_to_start_s and many heartbeat timeouts
        harness.clock.now = start + second
        if (second - 2) % 3 == 0:
            harness.beat("asr", 1, started_unix_ms=int((start + 2) * 1000))
        assert harness.expire() == [], f"{second} s"
    assert harness.step(ok("asr")) == ["stage.completed:asr#1", "job.completed"]
    assert harness.job().stages["asr"].started_unix_ms == 0  # the result carried no start time
    assert harness.timers() == {}


def test_a_silent_runner_expires_the_heartbeat_deadline(harness: Harness) -> None:
    # The last beat is at 41 s; the timer is looked at from schedule_to_start (30 s) on.
    second, produced = run_until_expiry(harness, beat_until_s=41)
    assert second == 51
    assert produced == ["work:asr#2", "stage.retrying:asr#1", "stage.started:asr#2"]
    assert harness.errors("orate.stage.retrying") == [
        "runner of asr stopped reporting on stage asr (last heartbeat 10.0 s ago)"
    ]


def test_a_runner_that_beats_but_never_finishes_expires_start_to_close(harness: Harness) -> None:
    second, produced = run_until_expiry(harness, beat_until_s=1_000)
    assert second == 2 + 60 + 5
    assert produced == ["work:asr#2", "stage.retrying:asr#1", "stage.started:asr#2"]
    assert harness.errors("orate.stage.retrying") == [
        "runner of asr has not finished stage asr 65.0 s after starting it (timeout_s 60)"
    ]


def test_a_runner_that_dies_after_pickup_is_noticed_at_its_first_look(harness: Harness) -> None:
    second, _ = run_until_expiry(harness, beat_until_s=2)
    assert second == 30  # the start-by time, when the timer is first looked at
    assert harness.errors("orate.stage.retrying") == [
        "runner of asr stopped reporting on stage asr (last heartbeat 28.0 s ago)"
    ]


def test_late_results_after_expiry_are_ignored(harness: Harness) -> None:
    harness.step(submit("listen"))
    harness.clock.now += 30
    assert harness.expire() == ["work:asr#2", "stage.retrying:asr#1", "stage.started:asr#2"]
    assert harness.step(ok("asr", attempt=1)) == []
    assert harness.step(failed("asr", attempt=1)) == []
    harness.clock.now += 31
    harness.beat("asr", 2)  # picked up on time, then silent
    harness.clock.now += 10
    assert harness.expire() == ["dlq:asr", "stage.failed:asr#2", "job.failed"]
    assert harness.step(ok("asr", attempt=2)) == []
    job = harness.job()
    assert job.status == jobs_pb2.JOB_STATUS_FAILED
    assert job.stages["asr"].started_unix_ms == START_MS + 61_000  # as the deadline reported it


def test_stale_duplicate_and_resent_deadline_commands_are_ignored(harness: Harness) -> None:
    harness.step(submit("listen"))
    harness.clock.now += 30
    (first,) = harness.scan()
    assert first.stage_deadline.kind == jobs_pb2.DEADLINE_KIND_SCHEDULE_TO_START
    harness.clock.now += 4.999
    assert harness.scan() == []  # claimed: other scans leave it alone
    harness.clock.now += 0.001
    (resent,) = harness.scan()  # not applied within deadline_resend_s: sent again
    assert harness.step(first, resent) == ["work:asr#2", "stage.retrying:asr#1", "stage.started:asr#2"]
    assert harness.step(deadline("asr", attempt=1)) == []
    assert harness.timers() == {"asr#2": 35_000 + 1_000 + 30_000}
    assert harness.step(ok("asr", attempt=2)) == ["stage.completed:asr#2", "job.completed"]
    assert harness.step(deadline("asr", attempt=2)) == []
    assert harness.step(deadline("asr", attempt=2, kind=jobs_pb2.DEADLINE_KIND_UNSPECIFIED)) == ["dlq:"]


def test_timers_are_written_and_cleared_with_the_job_writes(harness: Harness) -> None:
    harness.step(submit())
    assert harness.timers() == {"speak#1": 60_000}
    harness.clock.now += 1
    harness.step(ok("speak"))
    assert harness.timers() == {"animate#1": 1_000 + 60_000}
    harness.clock.now += 1
    harness.step(failed("animate"))
    assert harness.timers() == {"animate#2": 2_000 + 500 + 60_000}
    harness.step(ok("animate", attempt=2))
    assert harness.timers() == {}
    assert harness.scan() == []


def test_cancel_clears_the_timers(harness: Harness) -> None:
    harness.step(submit("perform"), ok("speak"))
    assert sorted(harness.timers()) == ["animate#1", "check#1"]
    harness.step(cancel())
    assert harness.timers() == {}


def test_a_rewrite_of_the_job_keeps_a_timer_the_scan_moved(harness: Harness) -> None:
    harness.step(submit("perform"), ok("speak"))
    harness.clock.now += 60
    harness.beat("animate", 1)
    harness.beat("check", 1)
    assert harness.scan() == []  # both runners beat: looked at again at their heartbeat timeout
    assert harness.timers() == {"animate#1": 90_000, "check#1": 90_000}
    harness.step(ok("check"))
    assert harness.timers() == {"animate#1": 90_000}


def test_one_engine_sends_a_deadline_while_another_scans_the_same_timers(harness: Harness) -> None:
    harness.step(submit("listen"))
    pipelines = make_pipelines(LISTEN)
    other = DeadlineScanner(
        pipelines, harness.store, harness.producer, TOPICS, ENGINE_SETTINGS, harness.clock
    )
    harness.clock.now += 30
    assert harness.scanner.scan() == 1
    assert other.scan() == 0


def test_a_queued_job_whose_submit_was_lost_is_submitted_again_until_it_leaves_the_queue(
    harness: Harness,
) -> None:
    stored = submit().submit.job
    stored.created_unix_ms = harness.now_ms()
    harness.store.put_job(stored)  # as the API does; its SubmitJob never reached the broker
    assert harness.timers() == {f"{SUBMIT_TIMER}#0": QUEUED_RESEND_MS}
    harness.clock.now += QUEUED_RESEND_MS / 1000 - 1
    assert harness.scan() == []
    harness.clock.now += 1
    resent = harness.scan()
    assert [command.submit.job for command in resent] == [stored]
    harness.clock.now += QUEUED_RESEND_MS / 1000
    assert len(harness.scan()) == 1, "still queued: sent again"
    # Both copies arrive: the first starts the job and drops its timer, the second is ignored.
    assert harness.step(*resent, *resent) == ["work:speak#1", "job.accepted", "stage.started:speak#1"]
    assert SUBMIT_TIMER not in {a.stage for a in harness.store.deadlines()}
    harness.clock.now += QUEUED_RESEND_MS / 1000
    assert [c for c in harness.scan() if c.HasField("submit")] == []
