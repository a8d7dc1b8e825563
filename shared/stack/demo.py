"""`orate demo`: bring up the embedded stack and run the main jobs on the model services that have landed:
a talking, gesturing figure from text (`speak`), a transcript of a multi-talker recording (`transcribe`) and
a talking face from speech (`animate`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.media import encode_wav
from shared.stack.control import Stack
from shared.synth.mixtures import generate_mixtures
from shared.voices import synthesize

DEMO_TEXT = "Hello! I am a digital human served by Orate. I listen, and I speak."
JOB_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class DemoJob:
    pipeline: str
    what: str
    # (JSON inputs, uploaded files by input name, what the user should expect to see)
    make_inputs: Callable[[Path], tuple[dict, dict[str, bytes], str]]


def _mixture_inputs(work_dir: Path) -> tuple[dict, dict[str, bytes], str]:
    """A fresh two-talker mixture (offline TTS voices, 30% overlap) with its reference transcript."""
    jsonl = generate_mixtures(work_dir / "mixture", n=1, seed=2026, speakers=(2, 2), overlap=(0.3, 0.3))
    entry = json.loads(jsonl.read_text().splitlines()[0])
    wav = (jsonl.parent / entry["mixed_wav"]).read_bytes()
    return {}, {"audio": wav}, f"reference (SOT order): {entry['sot']}"


def _speech_inputs(work_dir: Path) -> tuple[dict, dict[str, bytes], str]:
    speech = synthesize(DEMO_TEXT, "flite:slt")
    inputs = {"identity": "flite-slt", "emotion": "happy", "intensity": 1, "num_samples": 1}
    return inputs, {"audio": encode_wav(speech.waveform, speech.sample_rate)}, f"text: {DEMO_TEXT}"


def _text_inputs(work_dir: Path) -> tuple[dict, dict[str, bytes], str]:
    return {"text": DEMO_TEXT, "voice": "flite-slt"}, {}, f"text: {DEMO_TEXT}"


DEMO_JOBS = (
    DemoJob(
        "speak",
        "talking, gesturing figure from text (tts-gesture, preview mp4 with its speech)",
        _text_inputs,
    ),
    DemoJob("transcribe", "transcript of a multi-talker recording", _mixture_inputs),
    DemoJob(
        "animate", "talking 3D face from speech (offline voice, face-vqvae, preview mp4)", _speech_inputs
    ),
)


def _follow(api: httpx.Client, job_id: str) -> None:
    with api.stream("GET", f"/v1/jobs/{job_id}/events", timeout=JOB_TIMEOUT_S) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                stage = event.get("data", {}).get("stage", "")
                print(f"    {event['type']:<24} {stage}", flush=True)


def _save_artifacts(api: httpx.Client, job: dict, out_dir: Path) -> list[Path]:
    saved = []
    for name, value in job.get("outputs", {}).items():
        url = value.get("artifact", {}).get("url") if isinstance(value, dict) else None
        if url:
            response = api.get(url)
            response.raise_for_status()
            suffix = ".mp4" if "mp4" in response.headers.get("content-type", "") else ".bin"
            path = out_dir / f"{job['pipeline']}-{name}{suffix}"
            path.write_bytes(response.content)
            saved.append(path)
    return saved


def run_demo(stack: Stack) -> int:
    """Run every demo job whose pipeline the stack serves; 0 when all that ran succeeded. A stack this
    call started is stopped again when the demo fails, so a failed demo leaves nothing running."""
    started_here = not stack.status().ok
    if started_here:
        print("bringing up the embedded stack (first start takes a minute) ...", flush=True)
        stack.up()
    try:
        failures = _run_jobs(stack)
    except BaseException:
        if started_here:
            _stop(stack)
        raise
    if failures and started_here:
        _stop(stack)
        return 1
    print(
        f"\nthe stack is still up: API {stack.urls().api_url} (OpenAPI at /openapi.json); stop it with"
        " `make down`"
    )
    return 1 if failures else 0


def _stop(stack: Stack) -> None:
    print("the demo failed: stopping the stack it started", flush=True)
    stack.down()


def _run_jobs(stack: Stack) -> int:
    """Submit and follow each demo job; returns how many failed."""
    urls = stack.urls()
    out_dir = stack.run_dir / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    with httpx.Client(base_url=urls.api_url, timeout=60) as api:
        served = {pipeline["name"] for pipeline in api.get("/v1/pipelines").json()}
        for demo in DEMO_JOBS:
            if demo.pipeline not in served:
                print(f"- {demo.pipeline}: skipped, its model services have not landed yet")
                continue
            inputs, files, expectation = demo.make_inputs(out_dir)
            print(f"- {demo.pipeline}: {demo.what}\n    {expectation}", flush=True)
            request = {"pipeline": demo.pipeline, "inputs": inputs}
            response = (
                api.post(
                    "/v1/jobs",
                    data={"request": json.dumps(request)},
                    files={name: (f"{name}.wav", data, "audio/wav") for name, data in files.items()},
                )
                if files
                else api.post("/v1/jobs", json=request)  # no upload: a plain JSON submit
            )
            if response.status_code != 202:
                print(f"    rejected ({response.status_code}): {response.text}")
                failures += 1
                continue
            job_id = response.json()["job_id"]
            _follow(api, job_id)
            job = api.get(f"/v1/jobs/{job_id}").json()
            if job["status"] != "succeeded":
                print(f"    {job['status']}: {job.get('error')}")
                failures += 1
                continue
            outputs = job["outputs"].items()
            shown = {k: v for k, v in outputs if not isinstance(v, dict) or "artifact" not in v}
            print(f"    outputs: {json.dumps(shown, ensure_ascii=False)}")
            for path in _save_artifacts(api, job, out_dir):
                print(f"    saved {path}")
    return failures
