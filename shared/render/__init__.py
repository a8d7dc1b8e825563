"""Rendering shared by services: CPU previews of rig motion as mp4 (moderngl on Mesa llvmpipe, PyAV for
H.264/AAC). The preview-render service (services/preview-render) serves the face and body previews."""
