"""Mandarin voices from ttskit (PyPI, optional): reported unavailable unless the package is installed."""

from __future__ import annotations

import importlib
import importlib.util
import re

from shared import media
from shared.synth.tts.base import Synthesis, SynthesisError, VoiceFamily, VoiceInfo, estimate_words

INSTALL_HINT = (
    "ttskit is not installed (pip install --no-deps ttskit plus its runtime dependencies; "
    "see the ttskit entry in the assets guide)"
)


class TtskitFamily(VoiceFamily):
    """Mellotron + MelGAN, 22.05 kHz; the engine gives no timings, so words (characters) are estimated."""

    name = "ttskit"

    def __init__(self) -> None:
        self._speakers: list[str] | None = None

    def unavailable_reason(self) -> str | None:
        return None if importlib.util.find_spec("ttskit") is not None else INSTALL_HINT

    def voices(self) -> list[VoiceInfo]:
        if self.unavailable_reason():
            return []
        if self._speakers is None:
            # Importing the SDK loads torch; done once, on first use.
            sdk = importlib.import_module("ttskit.sdk_api")
            self._speakers = sorted(getattr(sdk, "_reference_audio_dict", {}))
        return [
            VoiceInfo(
                f"ttskit:{name}",
                self.name,
                name,
                "cmn",
                "unknown",
                22050,
                "estimated",
                "",
                "ttskit Mellotron",
            )
            for name in self._speakers
        ]

    def synthesize(self, text: str, voice: VoiceInfo) -> Synthesis:
        sdk = importlib.import_module("ttskit.sdk_api")
        try:
            encoded = sdk.tts_sdk(text, speaker=voice.name)
        except Exception as exc:  # the SDK raises bare AssertionError and torch errors alike
            raise SynthesisError(f"ttskit failed for speaker {voice.name}: {exc!r}") from exc
        waveform, rate = media.load_audio(encoded)
        # A Mandarin "word" here is one Han character (or one run of Latin letters or digits).
        tokens = re.findall(r"[\u4e00-\u9fff]|[A-Za-z0-9]+", text)
        return Synthesis(waveform, rate, [], estimate_words(tokens, 0.0, waveform.shape[0] / rate))
