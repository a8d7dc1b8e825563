"""Rendering: CPU previews of rig motion as mp4 (moderngl on Mesa llvmpipe, PyAV for H.264/AAC)."""
