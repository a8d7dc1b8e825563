"""Model-agnostic serving: the Predictor contract, deployment specs, and adapters for Ray Serve and Triton."""

from shared.serving.predictor import InvalidRequest, Predictor, StreamingPredictor

__all__ = ["InvalidRequest", "Predictor", "StreamingPredictor"]
