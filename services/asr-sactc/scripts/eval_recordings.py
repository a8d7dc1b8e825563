"""Score a checkpoint through the serving predictor on the held-out real recordings of shared.evalsets.

English multi-talker items (pyannote-sample: 30 s, 16 kHz; callfriend-know: a 24 s 8 kHz telephone call,
channels mixed to mono) get cpWER against their STM speakers, the hypothesis segments of one speaker label
joined across windows; single-talker clips (librivox-*, cards-*) get WER, summed per source. References
lose noise tags, punctuation and word fragments. Evaluation only: never train on these recordings.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

from asr_sactc.predictor import AsrSactcPredictor
from asr_sactc.scoring import cp_word_errors, word_errors
from orate.v1.common_pb2 import Audio
from orate.v1.models_pb2 import AsrSactcRequest

from shared.evalsets import build_evalsets


def normalize(text: str) -> str:
    """LibriSpeech style: noise tags and word fragments (`like-`) dropped, upper case, apostrophes kept."""
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text).replace("((", " ").replace("))", " ")
    words = [w for w in re.sub(r"[^A-Za-z'\- ]+", " ", text).split() if not w.endswith("-")]
    return " ".join(w.upper().strip("'") for w in words)


def stm_speakers(stm: str) -> dict[str, str]:
    """Per-speaker reference of an STM file (`file channel speaker start end words...`), in time order."""
    texts: dict[str, list[str]] = {}
    for line in stm.splitlines():
        _, _, speaker, _, _, *words = line.split()
        texts.setdefault(speaker, []).append(" ".join(words))
    return {speaker: normalize(" ".join(parts)) for speaker, parts in texts.items()}


def transcribe(predictor: AsrSactcPredictor, data: bytes) -> dict[str, str]:
    """The service's answer: the segments of each speaker label joined in time order."""
    request = AsrSactcRequest(audio=Audio(data=data))
    predictor.check(request)
    (response,) = predictor.predict([request])
    by_label: dict[str, list[str]] = {}
    for segment in response.speakers:
        by_label.setdefault(segment.speaker, []).append(segment.text)
    return {label: " ".join(texts) for label, texts in by_label.items()}


def evaluate(predictor: AsrSactcPredictor, root: Path) -> dict[str, dict]:
    """Results per multi-talker item and per single-talker source."""
    results: dict[str, dict] = {}
    for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item.get("language") != "en" or item["kind"] not in ("multi-talker", "single-talker"):
            continue
        hyps = transcribe(predictor, (root / item["audio"]).read_bytes())
        if item["kind"] == "multi-talker":
            refs = stm_speakers((root / item["stm"]).read_text(encoding="utf-8"))
            errors, words = cp_word_errors(list(refs.values()), list(hyps.values()))
            results[item["id"]] = {"metric": "cpWER", "references": refs, "hypotheses": hyps}
        else:
            ref, hyp = normalize(item["transcript"]), " ".join(hyps.values())
            errors, words = word_errors(ref, hyp), len(ref.split())
            source = results.setdefault(item["id"].split("-")[0], {"metric": "WER", "references": {}})
            source["references"][item["id"]] = ref
            source.setdefault("hypotheses", {})[item["id"]] = hyp
        result = results[item["id"] if item["kind"] == "multi-talker" else item["id"].split("-")[0]]
        result["errors"] = result.get("errors", 0) + errors
        result["words"] = result.get("words", 0) + words
        result["duration_s"] = round(result.get("duration_s", 0.0) + item["duration"], 3)
    for result in results.values():
        result["error_rate_percent"] = round(100 * result["errors"] / max(result["words"], 1), 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="demo", help="predictor checkpoint (a name or a folder)")
    parser.add_argument("--decode", choices=["joint", "greedy"], default="joint")
    parser.add_argument("--evalsets", type=Path, help="a shared.evalsets output folder (default: build one)")
    parser.add_argument("--pyannote", type=Path, help="the pyannote.audio 4.0.7 wheel, else the cache/PyPI")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    args = parser.parse_args()
    predictor = AsrSactcPredictor(checkpoint=args.checkpoint, decode=args.decode, num_threads=1)
    predictor.load()
    with tempfile.TemporaryDirectory(prefix="evalsets-") as tmp:
        root = args.evalsets
        if root is None:
            root = Path(tmp)
            _, skipped = build_evalsets(root, pyannote=args.pyannote)
            print("\n".join(skipped))
        results = evaluate(predictor, root)
    for name, result in results.items():
        print(name, result["metric"], result["error_rate_percent"], json.dumps(result["hypotheses"])[:200])
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
