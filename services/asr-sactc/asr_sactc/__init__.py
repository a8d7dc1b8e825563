"""SOT multi-talker ASR with Speaker-Aware CTC (ESPnet-compatible Conformer/Transformer AED + CTC)."""
