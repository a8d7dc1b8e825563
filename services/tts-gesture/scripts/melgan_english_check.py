"""Does ttskit's pretrained MelGAN (trained on Mandarin) render English mels intelligibly?

English sentences (shared.synth.texts) are spoken by offline voices (flite rms, awb, slt; espeak-ng en-us),
resampled to 22.05 kHz and analysed as ttskit's MelGAN was trained (Mellotron's TacotronSTFT: n_fft 1024,
hop 256, Hann, centred, 80 Slaney mels 0-8 kHz, log of the magnitude clamped at 1e-5), vocoded by
`ttskit/resource/model/melgan.kuangdd.pt`, and transcribed by the project's Whisper-base (CTranslate2, beam
5, as loadtests/asr_real_eval.py runs it). WER of the vocoded audio beside the source audio's WER; the
difference is what the vocoder costs. Writes services/tts-gesture/results/melgan_english.json.

    python services/tts-gesture/scripts/melgan_english_check.py [--sentences 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import jiwer
import librosa
import numpy as np
import soundfile as sf
import torch

from shared.encoders.whisper_asr import WhisperTranscriber
from shared.synth.texts import SENTENCES, normalize_transcript

RESULT = Path(__file__).resolve().parents[1] / "results" / "melgan_english.json"
MELGAN_RATE, WHISPER_RATE = 22050, 16000
VOICES = {
    "flite:rms": ["flite", "-voice", "rms", "-t", "{text}", "-o", "{out}"],
    "flite:awb": ["flite", "-voice", "awb", "-t", "{text}", "-o", "{out}"],
    "flite:slt": ["flite", "-voice", "slt", "-t", "{text}", "-o", "{out}"],
    "espeak-ng:en-us": ["espeak-ng", "-v", "en-us", "-w", "{out}", "{text}"],
}


def speak(voice: str, text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.wav"
        subprocess.run([a.format(text=text, out=out) for a in VOICES[voice]], check=True, capture_output=True)
        wave, rate = sf.read(out, dtype="float32")
    return librosa.resample(wave, orig_sr=rate, target_sr=MELGAN_RATE)


def tacotron_mel(wave: np.ndarray) -> torch.Tensor:
    """[1, 80, frames]: ttskit's training analysis (TacotronSTFT.mel_spectrogram)."""
    x = torch.from_numpy(np.clip(wave, -1.0, 1.0)).unsqueeze(0)
    spec = torch.stft(
        x, 1024, 256, 1024, torch.hann_window(1024), center=True, pad_mode="reflect", return_complex=True
    )
    basis = torch.from_numpy(
        librosa.filters.mel(sr=MELGAN_RATE, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0)
    )
    return torch.log(torch.clamp(basis.float() @ spec.abs(), min=1e-5))


def load_melgan() -> torch.nn.Module:
    """The whole MelGAN module pickled in the ttskit wheel; its classes are pickled as the top-level package
    `melgan` (ttskit puts its own folder on sys.path), hence the path entry."""
    sys.modules.setdefault("sounddevice", types.ModuleType("sounddevice"))  # aukit's playback import only
    root = Path(importlib.util.find_spec("ttskit").submodule_search_locations[0])
    sys.path.insert(0, str(root))
    model = torch.load(root / "resource/model/melgan.kuangdd.pt", map_location="cpu", weights_only=False)
    model.eval()  # ttskit's Generator.eval returns None
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    melgan, transcriber = load_melgan(), WhisperTranscriber()

    def whisper(wave_22k: np.ndarray) -> str:
        return normalize_transcript(
            transcriber(librosa.resample(wave_22k, orig_sr=MELGAN_RATE, target_sr=WHISPER_RATE))
        )

    rows, start = [], time.process_time()
    for voice in VOICES:
        for text in SENTENCES[: args.sentences]:
            source = speak(voice, text)
            with torch.no_grad():
                vocoded = melgan.inference(tacotron_mel(source)).float().numpy() / 32768.0
            rows.append(
                {
                    "voice": voice,
                    "ref": normalize_transcript(text),
                    "source": whisper(source),
                    "melgan": whisper(vocoded.astype(np.float32)),
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    def wer(key: str, voice: str | None = None) -> float:
        chosen = [r for r in rows if voice in (None, r["voice"])]
        return round(100 * jiwer.wer([r["ref"] for r in chosen], [r[key] for r in chosen]), 1)

    report = {
        "what": "ttskit 0.3.8 MelGAN (Mandarin-trained) on English mels, Whisper-base round trip",
        "command": "python services/tts-gesture/scripts/melgan_english_check.py --sentences "
        f"{args.sentences}",
        "machine": f"{platform.machine()} {torch.get_num_threads()} torch thread(s)",
        "utterances": len(rows),
        "wer_percent": {
            "source": wer("source"),
            "melgan": wer("melgan"),
            "per_voice": {v: {"source": wer("source", v), "melgan": wer("melgan", v)} for v in VOICES},
        },
        "cpu_s": round(time.process_time() - start, 1),
        "rows": rows,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(report["wer_percent"]))


if __name__ == "__main__":
    main()
