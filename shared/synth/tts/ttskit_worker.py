"""Serve ttskit 0.3.8 (Mellotron + MelGAN) syntheses to a parent process over JSON lines (run as a child).

Why a child process: ttskit only loads with process-wide patches (a stub `sounddevice`, `torch.load` with
weights_only=False, librosa >= 0.10 keyword shims), and its import configures the root logger and appends
to sys.path; none of that may reach the caller. Its import and model load also take seconds, so one child
serves many requests.

Protocol: one JSON request per stdin line, {"text": str, "speaker": str, "out": "path.npy"}; one JSON reply
per stdout line, {"rate": int, "units": [[char, pinyin, start_s, end_s], ...]} or {"error": str}. The float32
waveform is saved to "out". End of stdin ends the worker.

Timings: ttskit has no duration model, so each spoken character's span is read off Mellotron's attention
(the text symbol each decoder frame attends to most). That is syllable-level and approximate, not phone
timing. Usage: python ttskit_worker.py < requests
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import types
from typing import Any

import numpy as np
import torch
from phkit.chinese import sequence_to_text
from phkit.chinese.sequence import normalize_chinese, normalize_english, sequence2phoneme

# The SDK's conventions: 22.05 kHz, hop of 256 samples per decoder frame, an end-of-speech gate threshold of
# 0.8, chunks of at most 30 characters, 0.3 s of silence before, between and after chunks.
HOP = 256
GATE_THRESHOLD = 0.8
MAX_CHUNK = 30
SILENCE_S = 0.3
# phkit's symbol closing the symbols of one text character.
CHAIN = "-"


def _patch() -> None:
    """Let ttskit 0.3.8 load with today's torch and librosa; must run before ttskit is imported."""
    # aukit imports sounddevice for playback only; where PortAudio is missing that raises OSError, which
    # aukit (catching ImportError) does not survive.
    sys.modules["sounddevice"] = types.ModuleType("sounddevice")

    import librosa.filters
    import librosa.util

    # The checkpoints are whole pickled modules, which torch >= 2.6 refuses by default; they ship inside the
    # ttskit wheel, so they are trusted as much as its code.
    torch.load = functools.partial(torch.load, weights_only=False)

    # librosa 0.10 made these arguments keyword-only; ttskit passes them positionally, and binds the
    # functions at import (`from librosa.util import pad_center`), hence patching before that import.
    pad_center, mel = librosa.util.pad_center, librosa.filters.mel

    def pad_center_positional(data: np.ndarray, size: int, **kwargs: Any) -> np.ndarray:
        return pad_center(data, size=size, **kwargs)

    def mel_positional(
        sr: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None, **kwargs: Any
    ) -> np.ndarray:
        return mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, **kwargs)

    librosa.util.pad_center = pad_center_positional
    librosa.filters.mel = mel_positional


def _load() -> types.ModuleType:
    """Import the SDK and load the multi-speaker (mspk) Mellotron and MelGAN shipped in the wheel."""
    _patch()
    from ttskit import sdk_api

    # The models are in the wheel; never let the SDK try its download server.
    sdk_api.download_resource = lambda **_: None
    sdk_api.load_models(**sdk_api._global_mspk_kwargs)
    # ttskit and jieba log every step at INFO on the root logger set up at their import.
    logging.disable(logging.INFO)
    return sdk_api


def monotonic_path(attention: np.ndarray) -> np.ndarray:
    """[symbols, frames] attention weights -> the symbol each frame speaks, never going back.

    Per-frame argmax is not monotonic: the first decoder frame often attends to the end of the sequence.
    This is the path with the highest total log attention that starts on one of the first two symbols and
    moves forward by at most two symbols a frame (the attention does skip some).
    """
    log_attention = np.log(np.maximum(attention, 1e-8))
    symbols, frames = log_attention.shape
    score = np.full(symbols, -np.inf)
    score[:2] = log_attention[:2, 0]
    step = np.zeros((frames, symbols), dtype=np.int64)
    blocked = np.full(2, -np.inf)
    for t in range(1, frames):
        # Row k: the score of arriving from k symbols back.
        options = np.stack(
            [score, np.concatenate([blocked[:1], score[:-1]]), np.concatenate([blocked, score[:-2]])]
        )
        step[t] = options.argmax(axis=0)
        score = options.max(axis=0) + log_attention[:, t]
    path = np.empty(frames, dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(frames - 1, 0, -1):
        path[t - 1] = path[t] - step[t, path[t]]
    return path


def _synthesize_chunk(sdk: types.ModuleType, text: str, speaker: str) -> tuple[np.ndarray, list[list[Any]]]:
    """One chunk: (waveform, [[char, pinyin, start_frame, end_frame] for each spoken character])."""
    text_data, style, speaker_data, f0, _ = sdk.transform_mellotron_input_data(
        dataloader=sdk._dataloader, text=text, speaker=speaker, audio=""
    )
    _, mel, gates, alignments = sdk.mellotron.generate_mel(text_data, style, speaker_data, f0)
    gate = gates[0].numpy()
    end = int(np.argmax(gate > GATE_THRESHOLD)) or int(np.argmax(gate)) or gate.shape[0]
    waveform = sdk.melgan.generate_wave(mel=mel[:, :, :end]).squeeze(0).numpy().astype(np.float32)

    sequence = text_data[0].tolist()
    symbols = sequence2phoneme(sequence)
    # Symbol index where each character's symbols start; the last one is the end-of-sequence symbol.
    starts = [0] + [i + 1 for i, s in enumerate(symbols) if s == CHAIN]
    # One pinyin (tone sandhi applied) or symbol per character of the text as phkit normalised it.
    pinyin = sequence_to_text(sequence).split(" ")
    edges = np.searchsorted(monotonic_path(alignments[0, :, :end].numpy()), starts, side="left")
    normalised = normalize_english(normalize_chinese(text))
    chars = list(normalised) if len(normalised) == len(pinyin) else pinyin
    units = [
        [char, syllable, int(edges[k]), int(edges[k + 1])]
        for k, (char, syllable) in enumerate(zip(chars, pinyin, strict=True))
        # Punctuation and spaces are pauses, not words.
        if k + 1 < len(edges) and (syllable[-1:].isdigit() or syllable.isalpha())
    ]
    return waveform, units


def synthesize(sdk: types.ModuleType, text: str, speaker: str) -> tuple[np.ndarray, int, list[list[Any]]]:
    """Speak text the way the SDK's tts_sdk does (chunks joined by silences), keeping the timings."""
    rate = int(sdk._hparams.sampling_rate)
    chunks = sdk.split_text(text, MAX_CHUNK)
    if not chunks:
        raise ValueError(f"nothing to say in {text[:40]!r}")
    # Mellotron's prenet keeps dropout on at inference; a fixed seed makes each request reproducible.
    torch.manual_seed(0)
    silence = np.zeros(round(SILENCE_S * rate), dtype=np.float32)
    pieces, units, offset = [silence], [], silence.shape[0]
    for chunk in chunks:
        waveform, spans = _synthesize_chunk(sdk, chunk, speaker)
        units += [[c, p, (offset + a * HOP) / rate, (offset + b * HOP) / rate] for c, p, a, b in spans]
        pieces += [waveform, silence]
        offset += waveform.shape[0] + silence.shape[0]
    return np.clip(np.concatenate(pieces), -1.0, 1.0), rate, units


def main() -> int:
    # Replies own the real stdout; anything the libraries print goes to stderr instead.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sdk = _load()
    # Requests are UTF-8 whatever the locale (`python -I` ignores PYTHONIOENCODING).
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        request = json.loads(line.decode("utf-8"))
        try:
            waveform, rate, units = synthesize(sdk, request["text"], request["speaker"])
            np.save(request["out"], waveform)
            reply: dict[str, Any] = {"rate": rate, "units": units}
        except Exception as exc:  # the SDK raises AssertionError, torch and phkit errors alike
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply, ensure_ascii=False) + "\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
