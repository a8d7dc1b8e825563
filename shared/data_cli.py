"""`orate data`: list the offline voices, speak a text, generate multi-talker mixtures, check a media file."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from shared import media, voices
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
