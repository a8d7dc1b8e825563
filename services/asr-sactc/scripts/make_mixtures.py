"""Write train/dev/test splits of synthetic multi-talker mixtures (shared.synth) for asr_sactc.train."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from shared import voices
from shared.synth.mixtures import generate_mixtures

# Fast offline engines (flite, espeak-ng): festival's voices cost several times more per utterance.
DEMO_VOICES = [
    "flite:kal16",
    "flite:awb",
    "flite:rms",
    "flite:slt",
    "espeak:en-us",
    "espeak:en-us+f3",
    "espeak:en-us+m3",
    "espeak:en-us+f1",
    "espeak:en-us+m7",
    "espeak:en-us+f4",
    "espeak:en-gb",
    "espeak:en-gb+f3",
    "espeak:en-gb+m3",
]
# Each split: (mixtures, seed, speakers range, overlap range). Seeds differ, so no split repeats another's
# word sequences; the voices are shared (a closed-speaker set, as LibriSpeechMix's test speakers are not).
SPLITS: dict[str, tuple[int, tuple[int, int], tuple[float, float]]] = {
    "train": (1, (1, 2), (0.0, 0.8)),
    "dev": (2, (1, 2), (0.0, 0.8)),
    "test": (3, (2, 2), (0.0, 0.8)),
}


def write_split(out: Path, split: str, count: int, base_seed: int, voice_ids: list[str]) -> Path:
    """Generate `count` mixtures under out/<split>/ and write out/<split>.jsonl with paths relative to out."""
    offset, speakers, overlap = SPLITS[split]
    jsonl = generate_mixtures(
        out / split,
        count,
        seed=base_seed * 10 + offset,
        speakers=speakers,
        overlap=overlap,
        voices=voice_ids,
        text_source="words",
    )
    lines = []
    for line in jsonl.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        record["wavs"] = [f"{split}/{p}" for p in record["wavs"]]
        record["mixed_wav"] = f"{split}/{record['mixed_wav']}"
        lines.append(json.dumps(record) + "\n")
    target = out / f"{split}.jsonl"
    target.write_text("".join(lines), encoding="utf-8")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="data folder for asr_sactc.train --data")
    parser.add_argument("--train", type=int, default=1600, help="training mixtures (1-2 talkers)")
    parser.add_argument("--dev", type=int, default=80, help="validation mixtures (1-2 talkers)")
    parser.add_argument("--test", type=int, default=150, help="held-out 2-talker mixtures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voices", nargs="*", default=DEMO_VOICES, help="voice ids (shared.voices)")
    args = parser.parse_args()
    installed = voices.available_voices()
    voice_ids = [v for v in args.voices if v in installed]
    if len(voice_ids) < 2:
        raise SystemExit(
            f"need at least two installed voices of {args.voices}; apt-get install flite espeak-ng"
        )
    for split in SPLITS:
        start = time.time()
        path = write_split(args.out, split, getattr(args, split), args.seed, voice_ids)
        print(json.dumps({"split": split, "jsonl": str(path), "seconds": round(time.time() - start, 1)}))


if __name__ == "__main__":
    main()
