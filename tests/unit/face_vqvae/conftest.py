"""Shared fixtures for face-vqvae unit tests: the tiny config and a tiny stage-2 model."""

from __future__ import annotations

import pytest
import torch
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.model import ProbTalk3D, build_probtalk3d


@pytest.fixture(scope="session")
def tiny_config() -> FaceVqvaeConfig:
    return FaceVqvaeConfig.from_yaml("tiny")


@pytest.fixture
def tiny_model(tiny_config: FaceVqvaeConfig) -> ProbTalk3D:
    torch.manual_seed(0)
    return build_probtalk3d(tiny_config)
