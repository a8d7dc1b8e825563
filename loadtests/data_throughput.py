"""Synthetic-data throughput on this machine (TTS voices, mixtures, face motion, gestures, rendered frames),
merged into data.json.

Usage: .venv/bin/python loadtests/data_throughput.py [-n 40] [--only face_motion,gestures,render]
The file is a dict keyed by generator ("voices", "mixtures", "face_motion", "gestures", "render"), each entry
carrying the machine it was measured on. Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import voices
from shared.synth.mixtures import generate_mixtures
from shared.synth.texts import SENTENCES

FAST_FAMILIES = ("flite", "espeak")
BENCHES = ("voices", "mixtures", "face_motion", "gestures", "render")


def machine() -> dict:
    def version(args: list[str]) -> str:
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "not installed"
        lines = (out.stdout or out.stderr).strip().splitlines() or ["?"]
        # flite prints a copyright line before its version line.
        return next((line.strip() for line in lines if "version" in line.lower()), lines[0])

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        # The cores are shared, so the load at the start says how much of them this run had.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "engines": {
            "flite": version(["flite", "--version"]),
            "festival": version(["festival", "--version"]),
            "espeak-ng": version(["espeak-ng", "--version"]),
        },
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def bench_voices(per_voice: int) -> dict:
    """Per family: utterances per second and seconds of speech per wall second (one voice after another)."""
    out = {}
    by_family: dict[str, list[str]] = {}
    for info in voices.available_voices().values():
        by_family.setdefault(info.family, []).append(info.id)
    for family, ids in by_family.items():
        count, audio, start = 0, 0.0, time.perf_counter()
        for voice_id in ids:
            for text in SENTENCES[:per_voice]:
                audio += voices.synthesize(text, voice_id).duration_s
                count += 1
        wall = time.perf_counter() - start
        out[family] = {
            "voices": len(ids),
            "utterances": count,
            "utterances_per_s": round(count / wall, 2),
            "audio_s_per_s": round(audio / wall, 2),
        }
        print(f"voices[{family}]: {count / wall:.1f} utterances/s, {audio / wall:.1f} s of speech per s")
    return out


def bench_mixtures(n: int, seed: int) -> dict:
    """Mixtures per second from a cold start (every utterance synthesised), for two voice sets."""
    every = [v.id for v in voices.available_voices().values() if v.language.startswith("en")]
    sets = {"fast_voices": [v for v in every if v.split(":")[0] in FAST_FAMILIES], "all_voices": every}
    out = {}
    for name, pool in sets.items():
        if len(pool) < 3:
            continue
        with tempfile.TemporaryDirectory(prefix="orate-bench-") as tmp:
            start = time.perf_counter()
            jsonl = generate_mixtures(tmp, n, seed, speakers=(1, 3), overlap=(0.0, 0.5), voices=pool)
            wall = time.perf_counter() - start
            records = [json.loads(line) for line in jsonl.read_text().splitlines()]
        audio = sum(r["duration"] for r in records)
        out[name] = {
            "voices": len(pool),
            "mixtures": n,
            "speakers": [1, 3],
            "overlap": [0.0, 0.5],
            "wall_s": round(wall, 2),
            "mixtures_per_s": round(n / wall, 2),
            "mixture_audio_s_per_s": round(audio / wall, 2),
            "mean_mixture_s": round(audio / n, 2),
        }
        print(f"mixtures[{name}]: {n / wall:.2f} mixtures/s, {audio / wall:.1f} s of mixture audio per s")
    return out


def _fast_speech(count: int) -> list[tuple[str, voices.Synthesis]]:
    """count (voice, speech) pairs: SENTENCES in turn, by the fast English voices in turn, at 16 kHz."""
    every = voices.available_voices().values()
    pool = [v.id for v in every if v.family in FAST_FAMILIES and v.language.startswith("en")]
    picks = [(SENTENCES[i % len(SENTENCES)], pool[i % len(pool)]) for i in range(count)]
    return [(voice, voices.synthesize(text, voice)) for text, voice in picks]


def bench_face_motion(count: int) -> dict:
    """Seconds of ARKit face motion made per wall second from ready speech (TTS timed apart)."""
    from shared.synth.face_motion import FaceStyle, speech_to_arkit

    start = time.perf_counter()
    speech = _fast_speech(count)
    tts = time.perf_counter() - start
    audio = sum(s.duration_s for _, s in speech)
    start = time.perf_counter()
    for k, (_, s) in enumerate(speech):
        speech_to_arkit(s.waveform, s.sample_rate, s.phones, FaceStyle("id000", "happy", 2), seed=k)
    wall = time.perf_counter() - start
    out = {
        "utterances": count,
        "fps": 25,
        "motion_s_per_s": round(audio / wall, 1),
        "with_tts_motion_s_per_s": round(audio / (wall + tts), 2),
    }
    print(f"face_motion: {audio / wall:.0f} s of motion per s ({audio / (wall + tts):.1f} with TTS)")
    return out


def bench_gestures(count: int) -> dict:
    """Seconds of gesture triples per wall second: re-timing + face motion from ready speech, and the whole
    sequence (TTS and writing the BEAT2-like files included)."""
    from shared.rigs.open_rig import load_open_rig
    from shared.synth.gestures import build_library, load_bvh_clips, make_sequence, write_sequence

    skeleton = load_open_rig().skeleton()
    start = time.perf_counter()
    library = build_library(load_bvh_clips(), skeleton)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    speech = _fast_speech(count)
    tts = time.perf_counter() - start
    audio = sum(s.duration_s for _, s in speech)
    # Once untimed: the first call imports scipy's signal and interpolate modules (about 1.5 s).
    make_sequence(library, "warm-up", SENTENCES[0], speech[0][0], 0, speech=speech[0][1])
    with tempfile.TemporaryDirectory(prefix="orate-bench-") as tmp:
        motion = writing = 0.0
        for k, (voice, s) in enumerate(speech):
            start = time.perf_counter()
            sequence = make_sequence(library, f"{k}", SENTENCES[k % len(SENTENCES)], voice, k, speech=s)
            motion += time.perf_counter() - start
            start = time.perf_counter()
            write_sequence(Path(tmp), sequence, skeleton)
            writing += time.perf_counter() - start
    out = {
        "sequences": count,
        "fps": 30,
        "library_setup_s": round(setup, 2),
        "motion_s_per_s": round(audio / motion, 1),
        "end_to_end_s_per_s": round(audio / (tts + motion + writing), 2),
    }
    end_to_end = audio / (tts + motion + writing)
    print(f"gestures: {audio / motion:.0f} s of motion per s ({end_to_end:.1f} end to end)")
    return out


def bench_render(seconds: float, size: int) -> dict:
    """Rendered frames per second of the open rig: the rasteriser alone, anny's posing, and captures end to
    end (8 views every 5th frame plus a portrait every frame, PNGs written)."""
    import moderngl

    from shared.render.raster import ANNY_VIEW, MeshRenderer
    from shared.rigs.open_rig import load_face_rig, load_open_rig
    from shared.rigs.rotations import matrix_to_axis_angle
    from shared.synth.captures import CaptureSettings, render_sequence
    from shared.synth.gestures import FPS, build_library, load_bvh_clips, make_sequence

    context = moderngl.create_standalone_context(backend="egl")
    gl_renderer = context.info["GL_RENDERER"]
    context.release()
    rig = load_open_rig()
    library = build_library(load_bvh_clips(), rig.skeleton())
    ((voice, speech),) = _fast_speech(1)
    sequence = make_sequence(library, "bench", SENTENCES[0], voice, 0, speech=speech)
    frames = min(sequence.frames, round(seconds * FPS))
    poses = matrix_to_axis_angle(sequence.rotations[:32])
    start = time.perf_counter()
    vertices = rig.pose(poses, face=sequence.expressions[:32]).vertices
    posing = 32 / (time.perf_counter() - start)
    with MeshRenderer(rig.faces, (vertices.min((0, 1)), vertices.max((0, 1))), ANNY_VIEW, size) as renderer:
        start = time.perf_counter()
        for frame in vertices:
            renderer.render(frame)
        raster = len(vertices) / (time.perf_counter() - start)
    settings = CaptureSettings(views=8, size=size, portrait_size=size, stride=5, max_frames=frames)
    with tempfile.TemporaryDirectory(prefix="orate-bench-") as tmp:
        start = time.perf_counter()
        record = render_sequence(rig, load_face_rig().vertex_ids, sequence, Path(tmp), settings)
        wall = time.perf_counter() - start
    images = record["images"] + frames
    out = {
        "gl_renderer": gl_renderer,
        "size": size,
        "mesh_triangles": int(rig.faces.shape[0]),
        "raster_frames_per_s": round(raster, 1),
        "posing_frames_per_s": round(posing, 1),
        "captures": {"frames": frames, "views": 8, "stride": 5, "images": images},
        "captures_images_per_s": round(images / wall, 1),
    }
    print(f"render: {raster:.0f} frames/s at {size} px, {posing:.0f} poses/s, {images / wall:.1f} images/s")
    return out


def merge(path: Path, key: str, entry: dict) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="mixtures per voice set")
    parser.add_argument("--per-voice", type=int, default=3, help="sentences per voice in the voice benchmark")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--utterances", type=int, default=12, help="utterances in the face and gesture runs")
    parser.add_argument("--render-seconds", type=float, default=3.0, help="length of the captured take")
    parser.add_argument("--render-size", type=int, default=256, help="rendered image size in pixels")
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data.json")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; choose from {','.join(BENCHES)}")
    host = machine()
    runs = {
        "voices": lambda: {"families": bench_voices(args.per_voice)},
        "mixtures": lambda: {"configs": bench_mixtures(args.n, args.seed)},
        "face_motion": lambda: bench_face_motion(args.utterances),
        "gestures": lambda: bench_gestures(args.utterances),
        "render": lambda: bench_render(args.render_seconds, args.render_size),
    }
    for name in BENCHES:
        if name in args.only.split(","):
            merge(args.out, name, {"machine": host, **runs[name]()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
