"""Offline TTS engines behind shared.voices: one module per voice family."""
