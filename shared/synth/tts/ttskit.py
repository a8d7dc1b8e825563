"""Mandarin voices from ttskit 0.3.8 (optional, PyPI): 23 Mellotron speakers with a MelGAN vocoder, offline.

ttskit runs in one long-lived child process (ttskit_worker.py), which holds the compatibility patches it
needs and its import side effects, and amortises its ~10 s start over many requests. Licence: ttskit's code
is MIT, but its models were trained on Biaobei and Aliyun voice data released for non-commercial research
only, so these voices are not for commercial use.

Timings are estimated: ttskit has no duration model, so each Han character's span (a "word" here, with its
toned pinyin syllable as the "phone") is read off Mellotron's attention alignment. They are syllable-level and
approximate; silences between them are PAUSE.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import select
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from shared.synth.tts.base import (
    PAUSE,
    Synthesis,
    SynthesisError,
    Timing,
    VoiceFamily,
    VoiceInfo,
    clip_timings,
)

WORKER = Path(__file__).with_name("ttskit_worker.py")
NATIVE_RATE = 22050
# Startup (imports plus model load) takes ~10 s and a sentence a few seconds on a CPU; this only stops a
# wedged worker from blocking its caller forever.
REPLY_TIMEOUT_S = 600.0
# Import names of ttskit and of what its worker needs at run time (PyPI names in the install hint).
_MODULES = (
    "ttskit",
    "aukit",
    "phkit",
    "torch",
    "librosa",
    "sklearn",
    "pydub",
    "dotmap",
    "hanziconv",
    "pypinyin",
    "jieba",
    "inflect",
    "unidecode",
    "webrtcvad",
    "yaml",
)
# ttskit itself needs --no-deps: it pins PyYAML<=5.4.1, which does not build on Python 3.11.
INSTALL_HINT = "install the `mandarin` extra, then `pip install --no-deps ttskit==0.3.8`"

# The speakers of ttskit 0.3.8's multi-speaker model (ttskit.resource._speaker_dict) with the median F0
# measured on "今天天气很好，我们去公园散步吧。"; gender is "m" below 170 Hz, else "f" (the child-like voices
# above 350 Hz included). Left out: Xiaowei, whose attention fails after the first few characters (noise or
# silence follows).
_CATALOGUE: tuple[tuple[str, Literal["f", "m"], int], ...] = (
    ("Aibao", "f", 297),
    ("Aicheng", "m", 143),
    ("Aida", "m", 155),
    ("Aijia", "f", 265),
    ("Aijing", "f", 240),
    ("Aimei", "f", 286),
    ("Aina", "f", 283),
    ("Aiqi", "f", 316),
    ("Aitong", "f", 401),
    ("Aiwei", "f", 339),
    ("Aixia", "f", 271),
    ("Aiya", "f", 266),
    ("Aiyu", "f", 251),
    ("Aiyue", "f", 218),
    ("Siyue", "f", 226),
    ("Xiaobei", "f", 339),
    ("Xiaogang", "m", 140),
    ("Xiaomei", "f", 425),
    ("Xiaomeng", "f", 304),
    ("Xiaoxue", "f", 210),
    ("Xiaoyun", "m", 132),
    ("Yina", "f", 374),
    ("biaobei", "f", 266),
)


class TtskitFamily(VoiceFamily):
    name = "ttskit"

    def __init__(self) -> None:
        self._worker = _Worker()

    def unavailable_reason(self) -> str | None:
        missing = [m for m in _MODULES if importlib.util.find_spec(m) is None]
        return f"ttskit is not installed (missing {', '.join(missing)}): {INSTALL_HINT}" if missing else None

    def voices(self) -> list[VoiceInfo]:
        if self.unavailable_reason():
            return []
        return [
            VoiceInfo(
                f"ttskit:{name}",
                self.name,
                name,
                "zh",
                gender,
                NATIVE_RATE,
                "estimated",
                "pinyin",
                f"ttskit Mellotron + MelGAN, median F0 {f0} Hz; "
                "non-commercial research data (Biaobei, Aliyun); timings from attention, syllable-level",
            )
            for name, gender, f0 in _CATALOGUE
        ]

    def synthesize(self, text: str, voice: VoiceInfo) -> Synthesis:
        with tempfile.TemporaryDirectory(prefix="orate-ttskit-") as tmp:
            out = Path(tmp) / "out.npy"
            reply = self._worker.request({"text": text, "speaker": voice.name, "out": str(out)})
            if "error" in reply:
                raise SynthesisError(f"ttskit failed for speaker {voice.name}: {reply['error']}")
            waveform = np.load(out).astype(np.float32)
        rate = int(reply["rate"])
        duration = waveform.shape[0] / rate
        words = [Timing(char, start, end) for char, _, start, end in reply["units"]]
        phones: list[Timing] = []
        cursor = 0.0
        for _, syllable, start, end in reply["units"]:
            if start > cursor:
                phones.append(Timing(PAUSE, cursor, start))
            phones.append(Timing(syllable, start, end))
            cursor = end
        if cursor < duration:
            phones.append(Timing(PAUSE, cursor, duration))
        return Synthesis(waveform, rate, clip_timings(phones, duration), clip_timings(words, duration))

    def close(self) -> None:
        """Stop the worker process (a later synthesis starts a new one)."""
        self._worker.close()


class _Worker:
    """The ttskit_worker child: started on first use, restarted after a failure, one request at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None
        self._registered = False

    def request(self, payload: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps(payload, ensure_ascii=False) + "\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], REPLY_TIMEOUT_S)
                line = proc.stdout.readline() if ready else ""
            except OSError:  # the worker died before reading the request
                line = ""
            if not line:
                if proc.poll() is None:
                    why = f"gave no reply within {REPLY_TIMEOUT_S:.0f} s"
                    proc.kill()
                else:
                    why = f"exited with {proc.returncode}"
                log = self._log_tail()
                self._stop()
                raise SynthesisError(f"the ttskit worker {why}: {log}")
            return json.loads(line)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> subprocess.Popen[str]:
        self._stop()
        # The worker's stderr (ttskit's and jieba's logging) goes to a file: an unread pipe would fill up and
        # block it; the file's tail explains a failure.
        self._log = tempfile.TemporaryFile(prefix="orate-ttskit-")
        self._proc = subprocess.Popen(
            # -I keeps the worker's own folder off sys.path (its ttskit.py would shadow the package) and the
            # caller's PYTHON* variables out.
            [sys.executable, "-I", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            encoding="utf-8",
        )
        if not self._registered:
            atexit.register(self.close)
            self._registered = True
        return self._proc

    def _stop(self) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                try:
                    self._proc.stdin.close()  # end of input: the worker finishes its loop and exits
                except OSError:
                    pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace").strip()[-1500:]
