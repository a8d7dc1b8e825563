"""Padding in a batch changes no utterance's features or encoder states (serving batches rely on it)."""

import pytest
import torch
from asr_sactc.config import build_model, load_config
from asr_sactc.settings import SERVICE_DIR


@pytest.mark.parametrize("short", [16000, 16000 + 77, 3000])
def test_an_utterance_encodes_the_same_alone_and_padded_in_a_batch(short: int) -> None:
    torch.manual_seed(0)
    model = build_model(load_config(SERVICE_DIR / "configs" / "tiny.yaml"), 32).eval()
    alone, longer = 0.1 * torch.randn(1, short), 0.1 * torch.randn(1, 24803)
    batch = torch.zeros(2, longer.size(1))
    batch[0, :short], batch[1] = alone[0], longer[0]
    lengths = torch.tensor([short, longer.size(1)])
    with torch.no_grad():
        feats, feat_lengths = model.frontend(alone, torch.tensor([short]))
        batch_feats, batch_feat_lengths = model.frontend(batch, lengths)
        states, state_lengths = model.encode(alone, torch.tensor([short]))
        batch_states, batch_state_lengths = model.encode(batch, lengths)
    assert int(batch_feat_lengths[0]) == int(feat_lengths[0])
    torch.testing.assert_close(batch_feats[0, : int(feat_lengths[0])], feats[0], atol=1e-5, rtol=1e-5)
    assert int(batch_state_lengths[0]) == int(state_lengths[0]) == states.size(1)
    torch.testing.assert_close(batch_states[0, : states.size(1)], states[0], atol=1e-5, rtol=1e-4)
