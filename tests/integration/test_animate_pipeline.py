"""The `animate` pipeline on the embedded stack with its default deployments: speech + style -> face-vqvae
(Triton, demo checkpoint) -> preview-render (Ray Serve) -> an mp4 as long as the speech."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from shared.media import encode_wav, probe_audio
from shared.render.video import probe_mp4
from shared.stack.config import StackConfig, free_stack_ports
from shared.stack.control import running_stack
from shared.voices import synthesize

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("animate"),
        ports=free_stack_ports(runners=4),
        deployments_file=ROOT / "deploy" / "embedded" / "deployments.yaml",
        pipeline_dirs=[ROOT / "services" / "orchestrator" / "orchestrator" / "pipelines"],
        prometheus=False,
        topic_prefix=f"a{uuid.uuid4().hex[:8]}",
        partitions=2,
    ).resolved(ROOT)
    with running_stack(config, timeout_s=420) as urls:
        assert urls.api_url is not None
        with httpx.Client(base_url=urls.api_url, timeout=60) as client:
            yield client


def test_animate_turns_speech_into_face_motion_and_a_preview_as_long_as_the_speech(api: httpx.Client) -> None:
    speech = synthesize("Hello, I am a digital human.", "flite:slt")
    wav = encode_wav(speech.waveform, speech.sample_rate)
    inputs = {"emotion": "happy", "intensity": 2, "identity": "flite-rms", "seed": 7}
    response = api.post(
        "/v1/jobs",
        data={"request": json.dumps({"pipeline": "animate", "inputs": inputs})},
        files={"audio": ("speech.wav", wav, "audio/wav")},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    deadline = time.monotonic() + 300
    while (job := api.get(f"/v1/jobs/{job_id}").json())["status"] not in {"succeeded", "failed", "cancelled"}:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["status"] == "succeeded", json.dumps(job)
    (info,) = job["outputs"]["motion_info"]
    assert info["layout"] == "arkit-52" and info["dims"] == 52
    motion = np.frombuffer(api.get(job["outputs"]["motion"]["artifact"]["url"]).content, "<f4")
    assert motion.shape == (info["frames"] * 52,) and np.isfinite(motion).all()
    preview = api.get(job["outputs"]["preview"]["artifact"]["url"])
    assert preview.headers["content-type"] == "video/mp4"
    audio_s = probe_audio(wav).duration_s
    assert probe_mp4(preview.content).duration_s == pytest.approx(audio_s, abs=1 / 25 + 0.05)


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"emotion": "bored"}, "'bored' is not one of neutral"),
        ({"identity": "M003"}, "'M003' is not one of flite-slt"),
        ({"intensity": 3}, "above the maximum 2"),
        ({"temperature": -0.5}, "below the minimum 0"),
    ],
)
def test_animate_refuses_bad_style_with_a_4xx_and_the_reason(
    api: httpx.Client, inputs: dict, reason: str
) -> None:
    speech = synthesize("Hello there.", "flite:slt")
    response = api.post(
        "/v1/jobs",
        data={"request": json.dumps({"pipeline": "animate", "inputs": inputs})},
        files={"audio": ("speech.wav", encode_wav(speech.waveform, speech.sample_rate), "audio/wav")},
    )
    assert response.status_code == 422 and reason in response.json()["error"]["message"], response.text


def test_animate_refuses_too_short_audio(api: httpx.Client) -> None:
    short = encode_wav(np.zeros(1600, np.float32) + 0.1, 16000)
    response = api.post(
        "/v1/jobs",
        data={"request": json.dumps({"pipeline": "animate", "inputs": {}})},
        files={"audio": ("short.wav", short, "audio/wav")},
    )
    assert response.status_code == 422 and "at least 0.5 s" in response.json()["error"]["message"], (
        response.text
    )
