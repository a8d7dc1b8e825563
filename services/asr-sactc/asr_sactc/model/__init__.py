"""ESPnet-layout modules of the SOT + SACTC model (one class per file, ESPnet parameter names)."""
