"""Multi-talker mixtures from the offline voices, in the LibriSpeechMix layout, with SOT, RTTM and STM labels.

Output of generate_mixtures(out_dir, ...):
- mixtures.jsonl: one mixture per line with the LibriSpeechMix fields (id, mixed_wav, texts, wavs, delays,
  speakers, durations, genders; paths relative to out_dir) plus sot (the SOT target), overlap_ratio and
  duration. Speakers are listed first-in-first-out (delays ascending) and a voice id is the speaker id.
- mixtures.rttm and mixtures.stm: one turn per source utterance, file id = mixture id.
- sources/<voice>/<hash>.wav (trimmed, loudness-normalised utterances) and mixtures/<id>.wav, 16-bit.

Overlap ratio = time where two or more speakers are active / mixture duration, each utterance being
active over its whole (trimmed) source: first to last phone, plus 20 ms either side. Everything is a
function of the seed and the mixture index (and of the engine versions installed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared import media
from shared import voices as catalogue
from shared.synth.labels import Segment, rttm_line, sot_transcript, stm_line
from shared.synth.texts import TextSource, draw_text, normalize_transcript
from shared.synth.tts.base import PAUSE

SAMPLE_RATE = 16000
SOURCE_LUFS = -26.0
SOURCE_PEAK = 0.5
EDGE_PAD_S = 0.02  # kept around the first and last phone so onsets and releases are not clipped
MIN_START_GAP_S = 0.1  # later speakers start at least this much after the previous one: FIFO is unambiguous
MAX_ATTEMPTS = 30


@dataclass(frozen=True)
class Source:
    voice: str
    text: str
    path: str  # relative to out_dir
    wav: bytes
    samples: np.ndarray  # float32, quantised exactly as stored

    @property
    def frames(self) -> int:
        return self.samples.shape[0]


class _SourceBank:
    """Synthesises each (voice, text) once per run; stores under sources/ only what a mixture uses."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._cache: dict[tuple[str, str], Source] = {}
        self._stored: set[str] = set()

    def store(self, source: Source) -> None:
        if source.path not in self._stored:
            (self.out_dir / source.path).parent.mkdir(parents=True, exist_ok=True)
            (self.out_dir / source.path).write_bytes(source.wav)
            self._stored.add(source.path)

    def get(self, voice: str, text: str) -> Source:
        key = (voice, text)
        if key not in self._cache:
            speech = catalogue.synthesize(text, voice, sample_rate=SAMPLE_RATE)
            spoken = [p for p in speech.phones if p.label != PAUSE] or speech.words
            start = max(0, round((spoken[0].start - EDGE_PAD_S) * SAMPLE_RATE)) if spoken else 0
            end = round((spoken[-1].end + EDGE_PAD_S) * SAMPLE_RATE) if spoken else speech.waveform.shape[0]
            wave = media.normalize_loudness(speech.waveform[start:end], SAMPLE_RATE, SOURCE_LUFS, SOURCE_PEAK)
            wav = media.encode_wav(wave, SAMPLE_RATE)
            slug = voice.replace(":", "-").replace("+", "-")
            rel = f"sources/{slug}/{hashlib.sha1(text.encode()).hexdigest()[:12]}.wav"
            # The mixture adds exactly what a reader decodes from the stored 16-bit file.
            self._cache[key] = Source(voice, text, rel, wav, media.load_audio(wav)[0])
        return self._cache[key]


def overlap_ratio(starts: list[int] | np.ndarray, lengths: list[int] | np.ndarray) -> float:
    """Time covered by two or more of the intervals [start, start + length) over the span of all of them."""
    starts, lengths = np.asarray(starts, dtype=np.float64), np.asarray(lengths, dtype=np.float64)
    ends = starts + lengths
    span = ends.max() - starts.min()
    if span <= 0:
        return 0.0
    points = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones_like(starts), -np.ones_like(ends)])
    order = np.lexsort((steps, points))  # at a tie an end comes before a start: touching is not overlap
    points, active = points[order], np.cumsum(steps[order])
    covered = np.diff(points)[active[:-1] >= 2].sum()
    return float(covered / span)


def _starts(alpha: float, lengths: np.ndarray, shares: np.ndarray, min_gap: float) -> np.ndarray:
    """Start of each speaker: the previous start plus the part of the previous utterance not overlapped.

    Speaker j overlaps a fraction min(alpha * shares[j-1], 1) of speaker j-1's utterance: alpha = 0 plays
    them back to back, alpha = 1 / min(shares) starts each one min_gap after the one before.
    """
    starts = np.zeros(lengths.shape[0])
    for j in range(1, lengths.shape[0]):
        fraction = min(alpha * shares[j - 1], 1.0)
        starts[j] = starts[j - 1] + max((1 - fraction) * lengths[j - 1], min_gap)
    return starts


def choose_delays(
    lengths: list[int], target: float, shares: np.ndarray, tolerance: float
) -> list[int] | None:
    """Start samples (ascending, first 0) whose overlap ratio is within tolerance of target, or None.

    shares (one per later speaker, in (0, 1]) set how the overlap is spread between speaker pairs. The
    ratio is continuous in alpha and 0 at alpha = 0, so a grid finds a bracket and bisection closes it.
    """
    n = np.asarray(lengths, dtype=np.float64)
    gap = MIN_START_GAP_S * SAMPLE_RATE
    if n.shape[0] == 1:
        return [0] if target <= tolerance else None

    def ratio(alpha: float) -> float:
        return overlap_ratio(_starts(alpha, n, shares, gap), n)

    grid = np.linspace(0.0, 1.0 / float(np.min(shares)), 101)
    values = np.array([ratio(a) for a in grid])
    above = np.nonzero(values >= target)[0]
    if above.size == 0:
        return None
    hi = grid[above[0]]
    lo = grid[above[0] - 1] if above[0] > 0 else hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid) < target else (lo, mid)
    starts = [round(s) for s in _starts(hi, n, shares, gap)]
    return starts if abs(overlap_ratio(starts, lengths) - target) <= tolerance else None


@dataclass(frozen=True)
class _Plan:
    pool: list[str]
    genders: dict[str, str]
    speakers: tuple[int, int]
    overlap: tuple[float, float]
    text_source: TextSource
    tolerance: float


def generate_mixtures(
    out_dir: Path | str,
    n: int,
    seed: int,
    speakers: tuple[int, int] = (1, 3),
    overlap: tuple[float, float] = (0.0, 0.5),
    voices: list[str] | None = None,
    *,
    text_source: TextSource = "sentences",
    tolerance: float = 0.01,
) -> Path:
    """Write n mixtures of speakers[0]..speakers[1] distinct voices into out_dir; returns the jsonl path.

    Each multi-speaker mixture draws a target overlap ratio uniformly from overlap and meets it within
    tolerance (single-speaker mixtures have ratio 0). voices defaults to every installed English voice.
    """
    pool = _voice_pool(voices)
    if not 1 <= speakers[0] <= speakers[1] <= len(pool):
        raise ValueError(
            f"speakers must satisfy 1 <= lo <= hi <= {len(pool)} (the number of voices), got {speakers}"
        )
    if not 0.0 <= overlap[0] <= overlap[1] < 1.0:
        raise ValueError(f"overlap must satisfy 0 <= lo <= hi < 1, got {overlap}")
    genders = {v: catalogue.get_voice(v).gender for v in pool}
    plan = _Plan(pool, genders, tuple(speakers), tuple(overlap), text_source, tolerance)  # type: ignore[arg-type]
    out = Path(out_dir)
    (out / "mixtures").mkdir(parents=True, exist_ok=True)
    bank = _SourceBank(out)
    records, turns = [], []
    for index in range(n):
        record, segments = _mixture(out, bank, plan, index, np.random.default_rng([seed, index]))
        records.append(record)
        turns.extend(segments)
    jsonl = out / "mixtures.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (out / "mixtures.rttm").write_text("".join(rttm_line(s) + "\n" for s in turns), encoding="utf-8")
    (out / "mixtures.stm").write_text("".join(stm_line(s) + "\n" for s in turns), encoding="utf-8")
    return jsonl


def _mixture(
    out: Path, bank: _SourceBank, plan: _Plan, index: int, rng: np.random.Generator
) -> tuple[dict, list[Segment]]:
    k = int(rng.integers(plan.speakers[0], plan.speakers[1] + 1))
    for _ in range(MAX_ATTEMPTS):
        chosen = [plan.pool[int(i)] for i in rng.choice(len(plan.pool), size=k, replace=False)]
        sources = [bank.get(voice, draw_text(rng, plan.text_source)) for voice in chosen]
        target = float(rng.uniform(*plan.overlap)) if k > 1 else 0.0
        shares = rng.uniform(0.6, 1.0, size=max(k - 1, 1))
        starts = choose_delays([s.frames for s in sources], target, shares, plan.tolerance)
        if starts is not None:
            break
    else:
        raise ValueError(
            f"mixture {index}: no delays reach an overlap ratio in {plan.overlap} with these voices and "
            "texts (high ratios need utterances of near-equal length)"
        )
    mix_id = f"mix-{index:06d}"
    frames = max(s + src.frames for s, src in zip(starts, sources, strict=True))
    mixture = np.zeros(frames, dtype=np.float32)
    for start, src in zip(starts, sources, strict=True):
        mixture[start : start + src.frames] += src.samples
        bank.store(src)
    peak = float(np.max(np.abs(mixture)))
    if peak > 0.99:  # rare: only when loud passages of three voices coincide
        mixture *= np.float32(0.99 / peak)
    (out / "mixtures" / f"{mix_id}.wav").write_bytes(media.encode_wav(mixture, SAMPLE_RATE))
    texts = [normalize_transcript(src.text) for src in sources]
    delays = [s / SAMPLE_RATE for s in starts]
    durations = [src.frames / SAMPLE_RATE for src in sources]
    record = {
        "id": mix_id,
        "mixed_wav": f"mixtures/{mix_id}.wav",
        "texts": texts,
        "wavs": [src.path for src in sources],
        "delays": delays,
        "speakers": [src.voice for src in sources],
        "durations": durations,
        "genders": [plan.genders[src.voice] for src in sources],
        "sot": sot_transcript(texts, delays),
        "overlap_ratio": round(overlap_ratio(starts, [src.frames for src in sources]), 6),
        "duration": frames / SAMPLE_RATE,
    }
    segments = [
        Segment(mix_id, src.voice, d, d + dur, text)
        for src, d, dur, text in zip(sources, delays, durations, texts, strict=True)
    ]
    return record, segments


def _voice_pool(requested: list[str] | None) -> list[str]:
    if requested is not None:
        for voice_id in requested:
            catalogue.get_voice(voice_id)  # UnknownVoice early, with a few valid ids
        return list(dict.fromkeys(requested))
    pool = [v.id for v in catalogue.available_voices().values() if v.language.startswith("en")]
    if not pool:
        raise catalogue.UnknownVoice("no English voice is installed (apt-get install flite or espeak-ng)")
    return pool
