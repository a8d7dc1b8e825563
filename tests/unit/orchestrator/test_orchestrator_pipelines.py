"""Pipeline files: what loads, what is refused at load with a clear reason, and the stage graph."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from orate.v1 import jobs_pb2
from orchestrator.pipelines import InputSpec, PipelineError, ServiceNotDeployed, load_pipeline, load_pipelines
from orchestrator.process import read_deployments
from orchestrator.settings import OrchestratorSettings
from orchestrator_fakes import DEPLOYMENTS, PERFORM, TALK, make_pipelines

from shared.serving.deployments import DeploymentsFile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SERVICES = Path(__file__).resolve().parents[3] / "services"
PIPELINES = SERVICES / "orchestrator" / "orchestrator" / "pipelines"


def write(directory: Path, *definitions: dict[str, Any]) -> Path:
    directory.mkdir(exist_ok=True)
    for number, definition in enumerate(definitions):
        (directory / f"p{number}.yaml").write_text(json.dumps(definition))  # JSON is YAML
    return directory


def talk_with(change: Any) -> dict[str, Any]:
    definition = copy.deepcopy(TALK)
    change(definition)
    return definition


BROKEN = {
    "cycle": (
        lambda d: d["stages"][0].update(needs=["animate"]),
        "form a cycle",
    ),
    "self reference": (
        lambda d: d["stages"][0]["request"].update(voice="$stages.speak.response.audio"),
        "depends on itself",
    ),
    "unknown input": (
        lambda d: d["stages"][0]["request"].update(text="$inputs.txet"),
        "unknown input 'txet'",
    ),
    "unknown stage in a request": (
        lambda d: d["stages"][1]["request"].update({"audio.data": "$stages.spek.audio.data"}),
        "unknown stage 'spek'",
    ),
    "unknown stage in needs": (
        lambda d: d["stages"][1].update(needs=["nowhere"]),
        "needs unknown stages ['nowhere']",
    ),
    "unknown stage in outputs": (
        lambda d: d["outputs"].update(x="$stages.ghost.response"),
        "unknown stage 'ghost'",
    ),
    "request field that does not exist": (
        lambda d: d["stages"][1]["request"].update({"audio.bytes": "$stages.speak.audio.data"}),
        "has no field 'bytes'",
    ),
    "output path that is not a bytes field": (
        lambda d: d["outputs"].update(x="$stages.speak.body.fps"),
        "not a bytes field",
    ),
    "response path that does not exist": (
        lambda d: d["outputs"].update(x="$stages.animate.response.samples.0.colour"),
        "has no field 'colour'",
    ),
    "duplicate stage": (
        lambda d: d["stages"].append(dict(d["stages"][0])),
        "duplicate stage names",
    ),
    "mistyped default": (
        lambda d: d["inputs"]["samples"].update(default="two"),
        "expected a number",
    ),
    "a voice input that does not list its voices": (
        lambda d: d["inputs"]["voice"].pop("choices"),
        "voice inputs must list their voices in `choices`",
    ),
    "a default voice that is not listed": (
        lambda d: d["inputs"]["voice"].update(default="flite-awb"),
        "unknown voice 'flite-awb' is not one of flite-kal, flite-slt",
    ),
    "unknown key": (
        lambda d: d["stages"][0].update(retries=3),
        "retries",
    ),
    "no schedule-to-start time": (
        lambda d: d["stages"][0].update(schedule_to_start_s=0),
        "schedule_to_start_s",
    ),
    "a heartbeat timeout above 300 s (half the time a heartbeat is kept)": (
        lambda d: d["stages"][0].update(heartbeat_timeout_s=301),
        "heartbeat_timeout_s",
    ),
}


@pytest.mark.parametrize(("change", "reason"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_pipeline_is_refused_at_load_with_file_and_reason(
    tmp_path: Path, change: Any, reason: str
) -> None:
    directory = write(tmp_path / "pipelines", talk_with(change))
    with pytest.raises(PipelineError) as error:
        load_pipelines([directory], DEPLOYMENTS)
    assert reason in str(error.value)
    assert "p0.yaml" in str(error.value)


def test_pipeline_with_a_service_not_deployed_is_left_out_but_refused_alone(tmp_path: Path) -> None:
    directory = write(tmp_path / "pipelines", talk_with(lambda d: d["stages"][1].update(service="face-v2")))
    assert load_pipelines([directory], DEPLOYMENTS) == {}
    with pytest.raises(ServiceNotDeployed, match="service 'face-v2' is not in the deployments file"):
        load_pipeline(directory / "p0.yaml", DEPLOYMENTS)


def test_same_name_in_two_files_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "pipelines", TALK, TALK)
    with pytest.raises(PipelineError, match="also defined in"):
        load_pipelines([directory], DEPLOYMENTS)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="does not exist"):
        load_pipelines([tmp_path / "nowhere"], DEPLOYMENTS)


def test_pipelines_load_from_several_directories(tmp_path: Path) -> None:
    first = write(tmp_path / "a", TALK)
    second = write(tmp_path / "b", PERFORM)
    assert sorted(load_pipelines([first, second], DEPLOYMENTS)) == ["perform", "talk"]


def test_fixture_pipelines_load_against_the_fixture_deployments() -> None:
    deployments = read_deployments(OrchestratorSettings(deployments_file=FIXTURES / "deployments.yaml"))
    pipelines = load_pipelines([FIXTURES / "pipelines"], deployments)
    assert sorted(pipelines) == [
        "fixture-failing",
        "fixture-noop",
        "fixture-sleepy",
        "fixture-timeout",
        "fixture-two-stage",
    ]
    services = [stage.service for stage in pipelines["fixture-two-stage"].order()]
    assert services == ["fixture-resampler", "fixture-loudness"]


def services_own_deployments() -> DeploymentsFile:
    """Every service's own Ray Serve entry (services/*/deploy/ray.yaml)."""
    return DeploymentsFile(
        deployments=[
            entry
            for path in sorted(SERVICES.glob("*/deploy/ray.yaml"))
            for entry in yaml.safe_load(path.read_text())["deployments"]
        ]
    )


def test_product_pipelines_load_against_the_services_own_deploy_entries() -> None:
    pipelines = load_pipelines([PIPELINES], services_own_deployments())
    assert sorted(pipelines) == ["animate", "speak", "transcribe"]  # none left out for a missing service
    services = {name: [stage.service for stage in p.order()] for name, p in pipelines.items()}
    assert services["speak"] == ["tts-gesture", "preview-render"]


def test_speaks_speech_stage_feeds_a_talk_pipeline_by_the_documented_paths(tmp_path: Path) -> None:
    speak = yaml.safe_load((PIPELINES / "speak.yaml").read_text())
    talk = {
        "name": "talk",
        "inputs": speak["inputs"],
        "stages": [
            speak["stages"][0],
            {
                "name": "face",
                "service": "face-vqvae",
                "request": {"audio.data": "$stages.speech.audio.data", "emotion": "happy"},
            },
            {
                "name": "preview",
                "service": "preview-render",
                "request": {
                    "motion": "$stages.face.response.samples.0",
                    "motion.data_f32": "$stages.face.samples.0.data_f32",
                    "body": "$stages.speech.response.body",
                    "body.data_f32": "$stages.speech.body.data_f32",
                    "audio.data": "$stages.speech.audio.data",
                },
            },
        ],
        "outputs": {
            "translation": "$stages.speech.translation.data_f32",
            "foot_contact": "$stages.speech.foot_contact.data_f32",
            "phonemes": "$stages.speech.response.phonemes",
            "preview": "$stages.preview.video.data",
        },
    }
    pipeline = load_pipeline(write(tmp_path / "talk", talk) / "p0.yaml", services_own_deployments())
    assert [stage.name for stage in pipeline.order()] == ["speech", "face", "preview"]


def test_speak_offers_the_voices_of_the_tts_gesture_demo_checkpoint() -> None:
    speakers = yaml.safe_load((SERVICES / "tts-gesture" / "configs" / "demo.yaml").read_text())["speakers"]
    speak = yaml.safe_load((PIPELINES / "speak.yaml").read_text())
    assert speak["inputs"]["voice"]["choices"] == [speaker["name"] for speaker in speakers]


def test_topological_order_and_ready_stages() -> None:
    pipeline = make_pipelines(PERFORM)["perform"]
    assert [stage.name for stage in pipeline.order()] == ["speak", "animate", "check", "render"]
    pending, succeeded = jobs_pb2.STAGE_STATUS_PENDING, jobs_pb2.STAGE_STATUS_SUCCEEDED
    statuses = {name: pending for name in ("speak", "animate", "check", "render")}
    assert [s.name for s in pipeline.ready_stages(statuses)] == ["speak"]
    statuses["speak"] = succeeded
    assert [s.name for s in pipeline.ready_stages(statuses)] == ["animate", "check"]
    statuses["animate"] = succeeded
    statuses["check"] = jobs_pb2.STAGE_STATUS_DISPATCHED
    assert pipeline.ready_stages(statuses) == []
    statuses["check"] = succeeded
    assert [s.name for s in pipeline.ready_stages(statuses)] == ["render"]


def test_missing_inputs_counts_defaults_as_given() -> None:
    pipeline = make_pipelines(TALK)["talk"]
    assert pipeline.missing_inputs([]) == ["text"]
    assert pipeline.missing_inputs(["text"]) == []


def test_pipeline_dirs_env_var_is_a_path_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORATE_PIPELINE_DIRS", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    monkeypatch.setenv("ORATE_DEPLOYMENTS_FILE", "/etc/orate/deployments.yaml")
    monkeypatch.setenv("ORATE_API__HTTP_PORT", "8080")
    settings = OrchestratorSettings()
    assert settings.pipeline_dirs == [tmp_path / "a", tmp_path / "b"]
    assert settings.deployments_file == Path("/etc/orate/deployments.yaml")
    assert settings.api.http_port == 8080


@pytest.mark.parametrize(
    ("spec", "value", "reason"),
    [
        ({"type": "text", "choices": ["happy", "sad"]}, "bored", "'bored' is not one of happy, sad"),
        (
            {"type": "voice", "choices": ["slt", "rms"]},
            "flite:slt",
            "unknown voice 'flite:slt' is not one of slt, rms",
        ),
        ({"type": "number", "minimum": 0, "maximum": 2}, 3, "above the maximum 2"),
        ({"type": "number", "minimum": 0, "maximum": 2}, -1, "below the minimum 0"),
        ({"type": "text", "min_length": 1, "max_length": 5}, "", "0 characters, fewer than the minimum 1"),
        (
            {"type": "text", "min_length": 1, "max_length": 5},
            "sixsix",
            "6 characters, more than the maximum 5",
        ),
    ],
)
def test_input_choices_and_ranges_are_enforced(spec: dict, value: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        InputSpec.model_validate(spec).check_value(value)


def test_ranges_apply_to_numbers_only_and_lengths_to_text() -> None:
    with pytest.raises(ValueError, match="apply to number inputs only"):
        InputSpec.model_validate({"type": "text", "minimum": 1})
    with pytest.raises(ValueError, match="apply to text inputs only"):
        InputSpec.model_validate({"type": "voice", "choices": ["slt"], "max_length": 10})


def test_stage_deadlines_default_and_can_be_set() -> None:
    speak, animate = make_pipelines(talk_with(lambda d: d["stages"][1].update(schedule_to_start_s=5)))[
        "talk"
    ].stages
    assert (speak.timeout_s, speak.schedule_to_start_s, speak.heartbeat_timeout_s) == (60, 60, 30)
    assert animate.schedule_to_start_s == 5
