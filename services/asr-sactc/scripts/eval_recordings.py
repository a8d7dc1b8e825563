"""Score a checkpoint through the serving predictor on real recordings that ship with Debian packages.

- know.sph (package `transcriber`): 24 s of a two-party CALLFRIEND telephone call, 8 kHz stereo μ-law (one
  talker per channel, mixed to mono here as the service does), transcribed per speaker in know.trs. Scored
  by cpWER with the hypothesis segments grouped by their speaker label across windows.
- pyannote.audio's sample (given --pyannote-wheel: `pip download --no-deps pyannote.audio`, the MIT-licensed
  wheel holds sample.wav and sample.stm): 30 s of a two-party telephone-style conversation, 16 kHz, cpWER.
- LibriVox clips (package `pocketsphinx-en-us`' test data, if installed): single-talker read speech, WER.

Writes JSON with the hypotheses, references and error counts.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from asr_sactc.predictor import AsrSactcPredictor
from asr_sactc.scoring import cp_word_errors, word_errors
from orate.v1.common_pb2 import Audio
from orate.v1.models_pb2 import AsrSactcRequest

TRANSCRIBER = Path("/usr/share/doc/transcriber/examples")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def normalize(text: str) -> str:
    """LibriSpeech style: noise tags and word fragments dropped, uncertain words kept, upper case."""
    text = re.sub(r"\{[^}]*\}", " ", text).replace("((", " ").replace("))", " ")
    words = [w for w in re.sub(r"[^A-Za-z'\- ]+", " ", text).split() if not w.endswith("-")]
    return " ".join(w.upper().strip("'") for w in words)


def trs_references(path: Path) -> dict[str, str]:
    """Per-speaker reference text of a Transcriber .trs file; overlapped turns split at their <Who>."""
    texts: dict[str, list[str]] = {}
    for turn in ET.parse(path).getroot().iter("Turn"):
        speakers = turn.get("speaker", "").split()
        current = speakers[0] if speakers else "unknown"
        parts = [(current, turn.text or "")]
        for child in turn:
            if child.tag == "Who":
                current = speakers[int(child.get("nb", "1")) - 1]
            parts.append((current, child.tail or ""))
        for speaker, text in parts:
            texts.setdefault(speaker, []).append(text)
    return {speaker: normalize(" ".join(parts)) for speaker, parts in texts.items()}


def stm_references(text: str) -> dict[str, str]:
    """Per-speaker reference text of an STM file (`file channel speaker start end words...`)."""
    texts: dict[str, list[str]] = {}
    for line in text.splitlines():
        _, _, speaker, _, _, *words = line.split()
        texts.setdefault(speaker, []).append(" ".join(words))
    return {speaker: normalize(" ".join(parts)) for speaker, parts in texts.items()}


def transcribe(predictor: AsrSactcPredictor, data: bytes) -> dict[str, str]:
    """The service's answer, the segments of each speaker label joined in time order."""
    request = AsrSactcRequest(audio=Audio(data=data))
    predictor.check(request)
    (response,) = predictor.predict([request])
    by_label: dict[str, list[str]] = {}
    for segment in response.speakers:
        by_label.setdefault(segment.speaker, []).append(segment.text)
    return {label: " ".join(texts) for label, texts in by_label.items()}


def score(refs: dict[str, str], hyps: dict[str, str]) -> dict:
    errors, words = cp_word_errors(list(refs.values()), list(hyps.values()))
    return {"references": refs, "hypotheses": hyps, "errors": errors, "words": words}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="demo", help="predictor checkpoint (a name or a folder)")
    parser.add_argument("--decode", choices=["joint", "greedy"], default="joint")
    parser.add_argument("--pyannote-wheel", type=Path, help="a downloaded pyannote.audio wheel (its sample)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    args = parser.parse_args()
    predictor = AsrSactcPredictor(checkpoint=args.checkpoint, decode=args.decode)
    predictor.load()
    results: dict[str, dict] = {}
    if (TRANSCRIBER / "know.sph.gz").is_file():
        audio = gzip.decompress((TRANSCRIBER / "know.sph.gz").read_bytes())
        results["callfriend_know"] = score(
            trs_references(TRANSCRIBER / "know.trs"), transcribe(predictor, audio)
        )
        results["callfriend_know"]["metric"] = "cpWER, 2 talkers, 8 kHz telephone"
    if args.pyannote_wheel is not None:
        with zipfile.ZipFile(args.pyannote_wheel) as wheel:
            audio = wheel.read("pyannote/audio/sample/sample.wav")
            refs = stm_references(wheel.read("pyannote/audio/sample/sample.stm").decode())
        results["pyannote_sample"] = score(refs, transcribe(predictor, audio))
        results["pyannote_sample"]["metric"] = "cpWER, 2 talkers, 16 kHz"
    if (LIBRIVOX / "transcription").is_file():
        refs, hyps = [], []
        for line in (LIBRIVOX / "transcription").read_text().splitlines():
            text, utterance = re.match(r"<s> (.*) </s> \((.*)\)", line).groups()
            hyp = transcribe(predictor, (LIBRIVOX / f"{utterance}.wav").read_bytes())
            refs.append(normalize(text))
            hyps.append(" ".join(hyp.values()))
        results["librivox"] = {
            "references": refs,
            "hypotheses": hyps,
            "errors": sum(word_errors(r, h) for r, h in zip(refs, hyps, strict=True)),
            "words": sum(len(r.split()) for r in refs),
            "metric": f"WER over {len(refs)} single-talker clips (all speaker streams of a clip joined)",
        }
    for name, result in results.items():
        result["error_rate_percent"] = round(100 * result["errors"] / max(result["words"], 1), 1)
        print(name, result["error_rate_percent"], json.dumps(result["hypotheses"])[:300])
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
