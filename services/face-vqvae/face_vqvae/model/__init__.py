"""ProbTalk3D modules (paper names, upstream parameter names) and builders from a FaceVqvaeConfig."""

from __future__ import annotations

from face_vqvae.audio_encoders import build_audio_encoder
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.layouts import LAYOUTS
from face_vqvae.model.feature_predictor import FeaturePredictor
from face_vqvae.model.motion_decoder import MotionDecoder
from face_vqvae.model.motion_encoder import MotionEncoder
from face_vqvae.model.motion_prior import MotionPrior
from face_vqvae.model.probtalk3d import ProbTalk3D
from face_vqvae.model.vector_quantizer import Quantized, VectorQuantizer
from face_vqvae.style import StyleVocabulary

__all__ = [
    "FeaturePredictor",
    "MotionDecoder",
    "MotionEncoder",
    "MotionPrior",
    "ProbTalk3D",
    "Quantized",
    "VectorQuantizer",
    "build_motion_prior",
    "build_probtalk3d",
]


def build_motion_prior(config: FaceVqvaeConfig) -> MotionPrior:
    """Stage-1 VQ-VAE sized for the config's motion layout."""
    return MotionPrior(LAYOUTS[config.layout].dims, config.model)


def build_probtalk3d(config: FaceVqvaeConfig) -> ProbTalk3D:
    """Stage-2 model: the config's speech encoder, a fresh predictor and an (untrained) motion prior."""
    style_dim = StyleVocabulary.from_config(config.style).dim
    return ProbTalk3D(
        build_audio_encoder(config.audio_encoder),
        LAYOUTS[config.layout].dims,
        style_dim,
        config.model,
        config.fps,
        prior_dropout=config.train.recipe == "official",
    )
