"""The style condition: one-hot identity ⊕ emotion ⊕ intensity (32 + 8 + 3 = 43-d for 3DMEAD)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from face_vqvae.config import StyleConfig


class UnknownStyleError(ValueError):
    """An identity, emotion or intensity the model was not trained on; the message lists valid values."""


class StyleVocabulary:
    """Maps (identity, emotion, intensity) to the style vector the feature predictor multiplies in.

    The layout is upstream's `create_one_hot`: identity one-hot (index = position in the identity list),
    then emotion one-hot (index = position in the emotion list), then intensity one-hot.
    """

    def __init__(self, identities: Sequence[str], emotions: Sequence[str], intensities: int = 3) -> None:
        if len(set(identities)) != len(identities) or len(set(emotions)) != len(emotions):
            raise ValueError("identity and emotion names must be unique")
        self.identities = list(identities)
        self.emotions = list(emotions)
        self.intensities = intensities

    @classmethod
    def from_config(cls, config: StyleConfig) -> StyleVocabulary:
        return cls(config.identities, config.emotions, config.intensities)

    @property
    def dim(self) -> int:
        return len(self.identities) + len(self.emotions) + self.intensities

    def check(self, identity: str, emotion: str, intensity: int) -> None:
        """Raise UnknownStyleError naming the bad field and the accepted values."""
        if identity not in self.identities:
            raise UnknownStyleError(f"unknown identity {identity!r}; known: {', '.join(self.identities)}")
        if emotion not in self.emotions:
            raise UnknownStyleError(f"unknown emotion {emotion!r}; known: {', '.join(self.emotions)}")
        if not 0 <= intensity < self.intensities:
            raise UnknownStyleError(
                f"intensity {intensity} out of range; use 0..{self.intensities - 1} (0 low, 1 medium, 2 high)"
            )

    def encode(self, identity: str, emotion: str, intensity: int) -> torch.Tensor:
        """One style vector [dim] (float32)."""
        self.check(identity, emotion, intensity)
        vector = torch.zeros(self.dim)
        vector[self.identities.index(identity)] = 1.0
        vector[len(self.identities) + self.emotions.index(emotion)] = 1.0
        vector[len(self.identities) + len(self.emotions) + intensity] = 1.0
        return vector

    def encode_batch(self, styles: Sequence[tuple[str, str, int]]) -> torch.Tensor:
        """[B, dim] from (identity, emotion, intensity) triples."""
        return torch.stack([self.encode(*style) for style in styles])
