"""The `speak` pipeline on the embedded stack: text + voice -> tts-gesture (Ray Serve, streaming phrase by
phrase) -> preview-render's body mode (Ray Serve) -> speech, open-rig motion and an mp4 with video and audio
as long as the speech, submitted through the REST API; bad voices and text refused with the reason.

tts-gesture runs a tiny random-weight checkpoint written here (the embedded deployment's entry, pointed at
it), so the test needs no trained checkpoint: its voices are the pipeline's, and its duration predictor is
fixed at 10 mel frames per phoneme, so the speech has a length (random durations round to nothing).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from tts_gesture.testing import save_tiny_checkpoint

from shared import events
from shared.media import probe_audio
from shared.render.video import probe_mp4
from shared.stack.config import StackConfig, free_stack_ports
from shared.stack.control import running_stack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "services" / "orchestrator" / "orchestrator" / "pipelines"
VOICES = yaml.safe_load((PIPELINES / "speak.yaml").read_text())["inputs"]["voice"]["choices"]
TEXT = "Hello, I am a digital human."  # two phrases: two chunks
TERMINAL = {"succeeded", "failed", "cancelled"}
BODY_DIMS, FACE_DIMS = 104 * 6, 52


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    run_dir = tmp_path_factory.mktemp("speak")
    checkpoint = save_tiny_checkpoint(run_dir / "tts-gesture-tiny", "open-rig", VOICES, frames_per_phoneme=10)
    deployments = yaml.safe_load((ROOT / "deploy" / "embedded" / "deployments.yaml").read_text())
    tts = next(entry for entry in deployments["deployments"] if entry["service"] == "tts-gesture")
    tts["predictor_config"] = {**tts.get("predictor_config", {}), "checkpoint": str(checkpoint)}
    deployments_file = run_dir / "deployments.yaml"
    deployments_file.write_text(yaml.safe_dump(deployments))
    config = StackConfig(
        run_dir=run_dir,
        ports=free_stack_ports(runners=4),
        deployments_file=deployments_file,
        pipeline_dirs=[PIPELINES],
        prometheus=False,
        topic_prefix=f"s{uuid.uuid4().hex[:8]}",
        partitions=2,
    ).resolved(ROOT)
    with running_stack(config, timeout_s=420) as urls:
        assert urls.api_url is not None
        with httpx.Client(base_url=urls.api_url, timeout=60) as client:
            yield client


def submit(api: httpx.Client, inputs: dict) -> httpx.Response:
    return api.post("/v1/jobs", json={"pipeline": "speak", "inputs": inputs})


def finished(api: httpx.Client, job_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := api.get(f"/v1/jobs/{job_id}").json())["status"] not in TERMINAL:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def history(api: httpx.Client, job_id: str) -> list[dict]:
    """The job's CloudEvents from its SSE stream (the whole history: the job has ended)."""
    with api.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def test_speak_gives_speech_motion_and_a_preview_with_video_and_audio_as_long_as_the_speech(
    api: httpx.Client,
) -> None:
    response = submit(api, {"text": TEXT, "voice": VOICES[-1], "seed": 3})
    assert response.status_code == 202, response.text
    job = finished(api, response.json()["job_id"])
    assert job["status"] == "succeeded", json.dumps(job)
    outputs = job["outputs"]
    speech = outputs["speech"]
    assert (speech["voice"], speech["language"]) == (VOICES[-1], "en")
    wav = api.get(outputs["audio"]["artifact"]["url"]).content
    audio_s = probe_audio(wav).duration_s
    assert audio_s == pytest.approx(speech["audio_s"]) and audio_s > 1.0
    frames = round(audio_s * 30)
    for name, layout, dims in (("body", "open-rig-104-rot6d", BODY_DIMS), ("face", "arkit-52", FACE_DIMS)):
        info = speech[name]
        assert (info["layout"], info["fps"], info["dims"]) == (layout, 30, dims)
        assert abs(info["frames"] - frames) <= 1
        motion = np.frombuffer(api.get(outputs[name]["artifact"]["url"]).content, "<f4")
        assert motion.shape == (info["frames"] * dims,) and np.isfinite(motion).all()
    preview = api.get(outputs["preview"]["artifact"]["url"])
    assert preview.headers["content-type"] == "video/mp4"
    video = probe_mp4(preview.content)
    assert (video.video_codec, video.audio_codec, video.width, video.height) == ("h264", "aac", 512, 512)
    assert video.duration_s == pytest.approx(audio_s, abs=1 / 30 + 0.05)
    # The speech stage streamed each phrase before it completed, audio included.
    chunks = [e["data"] for e in history(api, job["job_id"]) if e["type"] == events.STAGE_CHUNK]
    assert [(c["stage"], c.get("sequence", 0)) for c in chunks] == [("speech", 0), ("speech", 1)]
    first = api.get(f"/v1/jobs/{job['job_id']}/artifacts/speech/chunks/1/0/audio.data")
    assert first.status_code == 200 and 0 < probe_audio(first.content).duration_s < audio_s


def test_an_unknown_voice_is_refused_naming_the_voices(api: httpx.Client) -> None:
    response = submit(api, {"text": TEXT, "voice": "flite:kal"})
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert f"unknown voice 'flite:kal' is not one of {', '.join(VOICES)}" in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "input 'text': 0 characters, fewer than the minimum 1"),
        ("word " * 121, "input 'text': 605 characters, more than the maximum 600"),
        (42, "input 'text': expected a text, got int"),
    ],
)
def test_bad_text_is_refused_with_the_reason(api: httpx.Client, text: object, reason: str) -> None:
    response = submit(api, {"text": text})
    assert response.status_code == 422 and reason in response.json()["error"]["message"], response.text


def test_text_the_voice_cannot_read_fails_the_job_with_the_services_reason_without_a_retry(
    api: httpx.Client,
) -> None:
    # Only the service's g2p knows what it can read: the submit is accepted, the stage refuses it for good.
    response = submit(api, {"text": "Привет"})
    assert response.status_code == 202, response.text
    job = finished(api, response.json()["job_id"])
    speech = job["stages"]["speech"]
    assert job["status"] == "failed" and speech["attempt"] == 1
    assert "cannot read these characters" in speech["error"], json.dumps(job)
