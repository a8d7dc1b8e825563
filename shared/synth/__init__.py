"""Synthetic data generators: offline TTS voices (tts/), multi-talker mixtures and other training sets."""
