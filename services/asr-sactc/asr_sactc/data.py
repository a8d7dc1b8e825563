"""LibriSpeechMix-style jsonl mixtures → waveforms, SOT token targets and per-speaker references."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from asr_sactc.scoring import overlap_ratio
from asr_sactc.sot import build_sot_text
from asr_sactc.tokenizer import Tokenizer


@dataclass
class MixtureExample:
    """One mixture: 16 kHz mono waveform [N] float32, SOT transcript, speakers in SOT order, overlap ratio."""

    id: str
    speech: np.ndarray
    sot_text: str
    speaker_texts: list[str]
    overlap: float


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform at `sample_rate` (channels averaged, resampled with soxr when needed)."""
    wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    wav = wav.mean(axis=1)
    return soxr.resample(wav, sr, sample_rate).astype(np.float32) if sr != sample_rate else wav


class LibriSpeechMixDataset(torch.utils.data.Dataset):
    """Lines of `{"id", "wavs" | "audio", "delays", "speakers", "texts", "durations"}`.

    "wavs" lists one source file per speaker, mixed here by summing each source shifted by its delay
    (LibriSpeechMix's construction); "audio" names an already mixed file. Delays and durations are in
    seconds; without "durations", source lengths are used. Relative paths resolve against `root`
    (default: the jsonl's folder).

    Args:
        jsonl: path to the jsonl file.
        root: base folder for relative audio paths.
        sample_rate: output sample rate in Hz.
    """

    def __init__(self, jsonl: str | Path, root: str | Path | None = None, sample_rate: int = 16000) -> None:
        jsonl = Path(jsonl)
        self.root = jsonl.parent if root is None else Path(root)
        self.sample_rate = sample_rate
        with open(jsonl, encoding="utf-8") as f:
            self.entries = [json.loads(line) for line in f if line.strip()]
        for entry in self.entries:
            if "wavs" not in entry and "audio" not in entry:
                raise ValueError(f"entry {entry.get('id')!r} has neither 'wavs' nor 'audio'")

    def __len__(self) -> int:
        return len(self.entries)

    def duration(self, index: int) -> float:
        """Mixture length in seconds from the line's delays and durations (a generator's "duration" first);
        0 when the line gives neither, so such lines sort first."""
        entry = self.entries[index]
        if "duration" in entry:
            return float(entry["duration"])
        if "durations" not in entry:
            return 0.0
        delays = entry.get("delays", [0.0] * len(entry["durations"]))
        return max(float(d) + float(u) for d, u in zip(delays, entry["durations"], strict=True))

    def __getitem__(self, index: int) -> MixtureExample:
        entry = self.entries[index]
        delays = [float(d) for d in entry.get("delays", [0.0] * len(entry["texts"]))]
        if "wavs" in entry:
            sources = [read_audio(self.root / p, self.sample_rate) for p in entry["wavs"]]
            offsets = [round(d * self.sample_rate) for d in delays]
            speech = np.zeros(
                max(o + len(s) for o, s in zip(offsets, sources, strict=True)), dtype=np.float32
            )
            for offset, source in zip(offsets, sources, strict=True):
                speech[offset : offset + len(source)] += source
            default_durations = [len(s) / self.sample_rate for s in sources]
        else:
            speech = read_audio(self.root / entry["audio"], self.sample_rate)
            default_durations = [len(speech) / self.sample_rate - d for d in delays]
        durations = [float(d) for d in entry.get("durations", default_durations)]
        order = sorted(range(len(delays)), key=lambda i: delays[i])
        return MixtureExample(
            id=str(entry["id"]),
            speech=speech,
            sot_text=build_sot_text(entry["texts"], delays),
            speaker_texts=[" ".join(entry["texts"][i].split()) for i in order],
            overlap=overlap_ratio(delays, durations),
        )


class LengthBatchSampler(torch.utils.data.Sampler[list[int]]):
    """ESPnet-style sorted batches: mixtures sorted by length and packed while the padded batch
    (count × longest) stays within batch_seconds of audio; the batch order is reshuffled every epoch.

    Padding costs little and short mixtures come in larger batches, so an epoch needs fewer steps.

    Args:
        durations: seconds per mixture.
        batch_seconds: padded audio per batch (a longer mixture still gets a batch of its own).
        generator: the shuffle's random source (None: torch's global one).
    """

    def __init__(
        self, durations: list[float], batch_seconds: float, generator: torch.Generator | None = None
    ) -> None:
        self.generator = generator
        self.batches: list[list[int]] = [[]]
        for i in sorted(range(len(durations)), key=lambda i: durations[i]):
            if self.batches[-1] and (len(self.batches[-1]) + 1) * durations[i] > batch_seconds:
                self.batches.append([])
            self.batches[-1].append(i)
        if not self.batches[-1]:
            self.batches.pop()

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for i in torch.randperm(len(self.batches), generator=self.generator).tolist():
            yield self.batches[i]


def collate(examples: list[MixtureExample], tokenizer: Tokenizer, ignore_id: int = -1) -> dict:
    """Pad examples: speech [B, N], speech_lengths [B], text [B, U] (ignore_id-padded), text_lengths [B]."""
    ids = [tokenizer.text2ids(ex.sot_text) for ex in examples]
    speech = torch.zeros(len(examples), max(len(ex.speech) for ex in examples))
    text = torch.full((len(examples), max(1, max(map(len, ids)))), ignore_id, dtype=torch.long)
    for i, (ex, seq) in enumerate(zip(examples, ids, strict=True)):
        speech[i, : len(ex.speech)] = torch.from_numpy(ex.speech)
        text[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return {
        "speech": speech,
        "speech_lengths": torch.tensor([len(ex.speech) for ex in examples]),
        "text": text,
        "text_lengths": torch.tensor([len(seq) for seq in ids]),
        "examples": examples,
    }
