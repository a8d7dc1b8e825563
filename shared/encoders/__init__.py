"""Pretrained audio encoders as PyTorch modules, loaded offline from weights installed with pip."""

from shared.encoders.whisper import (
    export_whisper_encoder,
    load_whisper_encoder,
    whisper_base_dir,
    whisper_log_mel,
)

__all__ = ["export_whisper_encoder", "load_whisper_encoder", "whisper_base_dir", "whisper_log_mel"]
