"""Speaker segment files: write and read NIST RTTM (who spoke when) and STM (who said what, when)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPEAKER_CHANGE = "$"


@dataclass(frozen=True)
class Segment:
    """One speaker turn; text is empty for RTTM."""

    file: str
    speaker: str
    start: float
    end: float
    text: str = ""


def sot_transcript(texts: list[str], starts: list[float]) -> str:
    """Serialized output training target: texts first-in-first-out by start time, joined by ' $ '."""
    order = sorted(range(len(texts)), key=lambda i: starts[i])  # stable: equal starts keep input order
    return f" {SPEAKER_CHANGE} ".join(texts[i] for i in order)


def rttm_line(seg: Segment) -> str:
    return f"SPEAKER {seg.file} 1 {seg.start:.3f} {seg.end - seg.start:.3f} <NA> <NA> {seg.speaker} <NA> <NA>"


def stm_line(seg: Segment) -> str:
    return f"{seg.file} 1 {seg.speaker} {seg.start:.3f} {seg.end:.3f} {seg.text}".rstrip()


def read_rttm(path: Path) -> list[Segment]:
    """SPEAKER lines of an RTTM file (other record types are skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            start = float(f[3])
            out.append(Segment(f[1], f[7], start, start + float(f[4])))
    return out


def read_stm(path: Path) -> list[Segment]:
    """Segments of an STM file; ';;' comments and the optional '<...>' label field are skipped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith(";;"):
            continue
        f = line.split()
        words = f[5:]
        if words and words[0].startswith("<"):
            words = words[1:]
        out.append(Segment(f[0], f[2], float(f[3]), float(f[4]), " ".join(words)))
    return out
