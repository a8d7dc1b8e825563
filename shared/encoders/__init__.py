"""Pretrained audio encoders as PyTorch modules, loaded offline from weights installed with pip."""

from shared.encoders.whisper import (
    export_whisper_encoder,
    load_whisper_encoder,
    whisper_base_dir,
    whisper_log_mel,
    whisper_model_dir,
    whisper_tiny_en_dir,
)
from shared.encoders.whisper_decoder import load_whisper_decoder, whisper_decoder_logits
from shared.encoders.whisper_tokenizer import SPEAKER_CHANGE, WhisperVocabulary, add_token_rows

__all__ = [
    "SPEAKER_CHANGE",
    "WhisperVocabulary",
    "add_token_rows",
    "export_whisper_encoder",
    "load_whisper_decoder",
    "load_whisper_encoder",
    "whisper_base_dir",
    "whisper_decoder_logits",
    "whisper_log_mel",
    "whisper_model_dir",
    "whisper_tiny_en_dir",
]
