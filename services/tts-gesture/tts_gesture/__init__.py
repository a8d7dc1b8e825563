"""tts-gesture: FastTalker text + voice -> speech and 30 fps full-body motion, as an Orate model service."""
