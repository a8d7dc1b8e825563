"""asr-sactc on a real tritonserver and Ray host, and the `transcribe` pipeline on the embedded stack."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import yaml

from shared import events
from shared.bus import Consumer, Topics
from shared.media import encode_wav
from shared.serving.clients import ModelClient, RayServeClient, TritonClient
from shared.serving.local import local_ray_serve, local_triton
from shared.serving.predictor import InvalidRequest
from shared.stack.config import StackConfig, free_stack_ports
from shared.stack.control import StackUrls, running_stack

pytest.importorskip("ray.serve")
pytest.importorskip("pytriton")
pytest.importorskip("asr_sactc")

from orate.v1.common_pb2 import Audio  # noqa: E402
from orate.v1.models_pb2 import AsrSactcRequest, AsrSactcResponse  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "services" / "asr-sactc" / "deploy"
PIPELINE = ROOT / "services" / "orchestrator" / "orchestrator" / "pipelines" / "transcribe.yaml"
TIMEOUT_S = 60.0
# Seeded random tiny weights with greedy decoding: fast, and equal on both backends (one thread each, so
# both reduce in the same order).
TINY = {"allow_random_init": True, "init_seed": 5, "decode": "greedy", "num_threads": 1, "max_audio_s": 30}
# The committed demo checkpoint, as deploy/triton.yaml serves it, on one thread.
DEMO = {"checkpoint": "demo", "num_threads": 1, "vad": "silero"}


def deployments(backend: str, out: Path, predictor_config: dict) -> Path:
    """The committed deploy entry for `backend` with the given predictor config."""
    loaded = yaml.safe_load((DEPLOY / f"{backend}.yaml").read_text())
    for spec in loaded["deployments"]:
        spec["predictor_config"] = predictor_config
    out.write_text(yaml.safe_dump(loaded))
    return out


def two_talkers(rate: int = 16000) -> bytes:
    """Two espeak-ng voices overlapping by about a second (shared.voices), as 16-bit WAV."""
    voices = pytest.importorskip("shared.voices")
    available = voices.available_voices()
    chosen = [v for v in ("espeak:en-us", "espeak:en-us+f3") if v in available]
    if len(chosen) < 2:
        pytest.skip("needs espeak-ng voices (apt-get install espeak-ng)")
    first = voices.synthesize("the river was calm and the boats moved slowly", chosen[0], sample_rate=rate)
    second = voices.synthesize("please put the blue folder on the table", chosen[1], sample_rate=rate)
    a, b = first.waveform, second.waveform
    delay = max(len(a) - rate, 0)
    mixture = np.zeros(max(len(a), delay + len(b)), dtype=np.float32)
    mixture[: len(a)] += a
    mixture[delay : delay + len(b)] += b
    return encode_wav(0.9 * mixture / np.max(np.abs(mixture)), rate)


def tone_wav(seconds: float, rate: int = 22050, level: float = 0.3) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave = level * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def request(data: bytes, beam_size: int = 0) -> bytes:
    return AsrSactcRequest(
        audio=Audio(data=data, media_type="audio/wav"), beam_size=beam_size
    ).SerializeToString()


# ---- the predictor on both backends -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelClient]:
    run_dir = tmp_path_factory.mktemp("ray")
    with local_ray_serve(deployments("ray", run_dir / "deployments.yaml", TINY), run_dir, cwd=ROOT) as ray:
        client = RayServeClient(ray.url, "asr-sactc")
        yield client
        client.close()


@pytest.fixture(scope="module")
def triton_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelClient]:
    run_dir = tmp_path_factory.mktemp("triton")
    with local_triton(deployments("triton", run_dir / "deployments.yaml", TINY), run_dir) as triton:
        client = TritonClient(triton.grpc_address, "asr-sactc")
        yield client
        client.close()


@pytest.fixture(scope="module")
def clients(ray_client: ModelClient, triton_client: ModelClient) -> dict[str, ModelClient]:
    return {"ray": ray_client, "triton": triton_client}


def test_triton_and_ray_give_the_same_transcript(clients: dict[str, ModelClient]) -> None:
    upload = tone_wav(2.5)
    from_triton = AsrSactcResponse.FromString(clients["triton"].predict(request(upload), TIMEOUT_S))
    from_ray = AsrSactcResponse.FromString(clients["ray"].predict(request(upload), TIMEOUT_S))
    assert from_triton == from_ray
    assert from_triton.audio_s == pytest.approx(2.5, abs=1e-3)
    assert [p.strip() for p in from_triton.sot_text.split("$")] == [s.text for s in from_triton.speakers]


BAD = [
    (lambda: request(b"RIFF but not really a wav file"), "not an audio file"),
    (lambda: request(tone_wav(1.0, level=0.0)), "silent"),
    (lambda: request(tone_wav(31.0)), "at most 30 s"),
    (lambda: request(tone_wav(1.0, rate=4000)), "sample rate 4000 Hz is too low"),
    (lambda: request(tone_wav(1.0), beam_size=99), "beam_size 99 out of range"),
]


@pytest.mark.parametrize("backend", ["triton", "ray"])
@pytest.mark.parametrize(("make", "reason"), BAD, ids=["not-audio", "silence", "too-long", "4khz", "beam"])
def test_bad_input_is_an_invalid_request_with_the_reason(
    clients: dict[str, ModelClient], backend: str, make, reason: str
) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        clients[backend].predict(make(), TIMEOUT_S)


def test_concurrent_requests_share_the_triton_batcher(clients: dict[str, ModelClient]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    uploads = [tone_wav(1.0 + 0.3 * i) for i in range(6)]
    alone = [clients["triton"].predict(request(u), TIMEOUT_S) for u in uploads]
    with ThreadPoolExecutor(len(uploads)) as pool:
        together = list(pool.map(lambda u: clients["triton"].predict(request(u), TIMEOUT_S), uploads))
    assert [AsrSactcResponse.FromString(r).sot_text for r in together] == [
        AsrSactcResponse.FromString(r).sot_text for r in alone
    ]


# ---- the transcribe pipeline on the embedded stack --------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUrls]:
    run_dir = tmp_path_factory.mktemp("stack")
    pipelines = run_dir / "pipelines"
    pipelines.mkdir()
    (pipelines / "transcribe.yaml").write_text(PIPELINE.read_text())
    config = StackConfig(
        run_dir=run_dir,
        ports=free_stack_ports(),
        deployments_file=deployments("triton", run_dir / "deployments.yaml", DEMO),
        pipeline_dirs=[pipelines],
        prometheus=False,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}",
        partitions=1,
    )
    with running_stack(config, timeout_s=300) as urls:
        yield urls


@pytest.fixture(scope="module")
def api(stack: StackUrls) -> Iterator[httpx.Client]:
    assert stack.api_url is not None
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client


def wait_finished(api: httpx.Client, job_id: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {job}")


def completed_event(urls: StackUrls, job_id: str, timeout_s: float = 30) -> dict:
    """The job's orate.job.completed CloudEvent from the events topic."""
    settings = urls.kafka_settings()
    topic = Topics(urls.env["ORATE_KAFKA__TOPIC_PREFIX"]).events
    consumer = Consumer(settings, f"test-{uuid.uuid4().hex[:8]}", [topic], "test")
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in consumer.poll_batch(100, 0.2):
                envelope = events.from_cloudevent(record.value)
                if record.key == job_id and envelope["type"] == events.JOB_COMPLETED:
                    return envelope
    finally:
        consumer.close()
    raise AssertionError(f"no {events.JOB_COMPLETED} event for job {job_id}")


def test_transcribe_job_returns_per_speaker_text_and_emits_it(api: httpx.Client, stack: StackUrls) -> None:
    response = api.post(
        "/v1/jobs",
        data={"request": json.dumps({"pipeline": "transcribe", "inputs": {}})},
        files={"audio": ("meeting.wav", two_talkers(), "audio/wav")},
    )
    assert response.status_code == 202, response.text
    job = wait_finished(api, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    speakers = job["outputs"]["speakers"]
    assert speakers and all(s["speaker"].startswith("spk") and s["text"].strip() for s in speakers)
    assert [p.strip() for p in job["outputs"]["sot_text"].split("$")] == [s["text"] for s in speakers]
    envelope = completed_event(stack, job["job_id"])
    assert envelope["data"]["outputs"]["speakers"]["json"] == speakers


def test_transcribe_answers_silence_with_an_empty_transcript_flagged_no_speech(api: httpx.Client) -> None:
    response = api.post(
        "/v1/jobs",
        data={"request": json.dumps({"pipeline": "transcribe", "inputs": {}})},
        files={"audio": ("silence.wav", encode_wav(np.zeros(16000, dtype=np.float32), 16000), "audio/wav")},
    )
    assert response.status_code == 202, response.text
    job = wait_finished(api, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    assert job["outputs"]["no_speech"] is True
    assert job["outputs"]["speakers"] == [] and job["outputs"]["sot_text"] == ""


def test_transcribe_rejects_a_non_audio_upload_at_the_api(api: httpx.Client) -> None:
    response = api.post(
        "/v1/jobs",
        data={"request": json.dumps({"pipeline": "transcribe", "inputs": {}})},
        files={"audio": ("notes.txt", b"these are meeting notes, not audio", "text/plain")},
    )
    assert response.status_code == 422
    assert "not an audio file" in response.json()["error"]["message"]
