"""Decode a LibriSpeechMix-style jsonl and score PI-WER, cpWER and overlap subsets (OA-WER)."""

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from asr_sactc.data import LibriSpeechMixDataset
from asr_sactc.recognizer import DECODERS, SACTCRecognizer
from asr_sactc.scoring import score_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="config.yaml written by asr_sactc.train")
    parser.add_argument("--model", type=Path, required=True, help="ESPnet-layout weights (.pth)")
    parser.add_argument("--data", type=Path, required=True, help="jsonl with wavs/audio, delays, texts")
    parser.add_argument("--out", type=Path, required=True, help="folder for hyp.trn, ref.trn and scores.json")
    parser.add_argument("--decode", choices=sorted(DECODERS), default="joint")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    recognizer = SACTCRecognizer(args.config, args.model, args.device, args.decode)
    dataset = LibriSpeechMixDataset(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    items = []
    with (
        open(args.out / "hyp.trn", "w", encoding="utf-8") as hyp_f,
        open(args.out / "ref.trn", "w", encoding="utf-8") as ref_f,
    ):
        for example in (dataset[i] for i in range(len(dataset))):
            hyps = recognizer.transcribe([example.speech], recognizer.sample_rate)[0]
            hyp_f.write(f"{' $ '.join(hyps)}\t({example.id})\n")
            ref_f.write(f"{example.sot_text}\t({example.id})\n")
            items.append((example.speaker_texts, hyps, example.overlap))
    score = score_corpus(items)
    (args.out / "scores.json").write_text(json.dumps(asdict(score), indent=2) + "\n")
    print(json.dumps(asdict(score)))


if __name__ == "__main__":
    main()
