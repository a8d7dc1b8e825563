"""Style vectors, motion layouts and the 3DMEAD-style dataset reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from face_vqvae.config import MEAD_EMOTIONS, MEAD_IDENTITIES, FaceVqvaeConfig
from face_vqvae.data import MeadDataset, parse_key
from face_vqvae.layouts import LAYOUTS
from face_vqvae.style import StyleVocabulary, UnknownStyleError


def test_full_style_vector_is_43_dimensional_one_hots() -> None:
    styles = StyleVocabulary.from_config(FaceVqvaeConfig.from_yaml("full").style)
    assert (styles.dim, len(MEAD_IDENTITIES), MEAD_IDENTITIES[18]) == (43, 32, "W009")
    vector = styles.encode("M005", "contempt", 2)
    assert torch.nonzero(vector).flatten().tolist() == [1, 32 + 7, 40 + 2]


@pytest.mark.parametrize(
    ("style", "field"),
    [
        (("X001", "happy", 0), "identity"),
        (("M003", "joy", 0), "emotion"),
        (("M003", "happy", 3), "intensity"),
    ],
)
def test_unknown_style_names_the_field(style: tuple, field: str) -> None:
    with pytest.raises(UnknownStyleError, match=field):
        StyleVocabulary(MEAD_IDENTITIES, MEAD_EMOTIONS).encode(*style)


def test_flame_scaling_matches_upstream_minmax() -> None:
    flame = LAYOUTS["flame-53"]
    raw = np.array(
        [[-3.0] * 50 + [-0.1] * 3, [3.0] * 50 + [0.5] * 3, [0.0] * 50 + [0.2] * 3], dtype=np.float32
    )
    scaled = flame.to_model(raw)
    np.testing.assert_allclose(scaled[:2], [[0.0] * 53, [1.0] * 53], atol=1e-6)
    np.testing.assert_allclose(scaled[2], [0.5] * 53, atol=1e-6)
    np.testing.assert_allclose(flame.from_model(torch.from_numpy(scaled)).numpy(), raw, atol=1e-6)


def test_arkit_output_is_clipped_to_weights() -> None:
    arkit = LAYOUTS["arkit-52"]
    assert arkit.dims == 52 and len(arkit.exp_channels) == 48
    assert arkit.from_model(np.array([-0.2, 0.5, 1.3])[None].repeat(52, 0).T).max() == 1.0


def test_mead_dataset_reads_names_and_splits(tmp_path: Path) -> None:
    (tmp_path / "param").mkdir()
    (tmp_path / "wav").mkdir()
    for stem in ("M003_001_0_0", "M003_033_0_0", "M003_025_happy_1", "M999_001_0_0"):
        np.save(tmp_path / "param" / f"{stem}.npy", np.zeros((1, 10, 403), dtype=np.float32))
    assert parse_key("M003_025_happy_1", list(MEAD_EMOTIONS)) == ("M003", 25, "happy", 1)
    kwargs = {"identities": list(MEAD_IDENTITIES), "emotions": list(MEAD_EMOTIONS), "need_audio": False}
    train = MeadDataset(tmp_path, LAYOUTS["flame-53"], sentences="train", **kwargs)
    val = MeadDataset(tmp_path, LAYOUTS["flame-53"], sentences="val", **kwargs)
    assert [i.key for i in train.items] == ["M003_001_0_0"]
    assert sorted(i.key for i in val.items) == ["M003_025_happy_1", "M003_033_0_0"]
    motion = train[0]["motion"]
    assert motion.shape == (10, 53)
    assert torch.allclose(motion[:, :50], torch.full((10, 50), 0.5))  # zero expression -> mid-range
    kwargs["need_audio"] = True
    assert MeadDataset(tmp_path, LAYOUTS["flame-53"], sentences="train", **kwargs).items == []
