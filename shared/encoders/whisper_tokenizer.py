"""Whisper's token vocabulary, loaded offline from the `tokenizer.json` beside the CTranslate2 weights, with
extra tokens (such as SOT's speaker change `$`) appended after the model's last id."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import WhisperTokenizerFast
from transformers.models.whisper.modeling_whisper import WhisperDecoder

SPEAKER_CHANGE = "$"


class WhisperVocabulary:
    """Whisper token ids for text, with extra tokens that never disturb an existing id.

    `tokenizer.json` lists the byte-level BPE pieces and the special tokens up to `<|notimestamps|>`; the
    model's vocabulary (CTranslate2's `vocabulary.txt`) continues with the timestamp tokens. Each extra token
    gets the next id after all of those, so id `size_before_extras + k` is extra token k and every pretrained
    embedding row keeps its meaning. An extra token is recognised where it stands as a word of its own
    ("A $ B"); the text between extras is encoded as Whisper transcripts are, with a leading space.

    Args:
        model_dir: a CTranslate2 Whisper folder (`tokenizer.json`, `vocabulary.txt`).
        extra_tokens: words to append to the vocabulary, in this order.
    """

    def __init__(self, model_dir: str | Path, extra_tokens: Sequence[str] = (SPEAKER_CHANGE,)) -> None:
        if len(set(extra_tokens)) != len(extra_tokens) or any(t.split() != [t] for t in extra_tokens):
            raise ValueError(f"extra tokens must be distinct single words, got {list(extra_tokens)}")
        model_dir = Path(model_dir)
        self._bpe = WhisperTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
        pieces = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
        self.pretrained_size = len(pieces)
        self.token_list = [*pieces, *extra_tokens]
        self.extra_ids = {token: self.pretrained_size + i for i, token in enumerate(extra_tokens)}
        self._ids = {piece: i for i, piece in enumerate(pieces)}
        self.eot = self._ids["<|endoftext|>"]
        self.sot = self._ids["<|startoftranscript|>"]
        # Ids the text decoding drops: every special token (<|...|>, timestamps included).
        self._special = {
            i for i, piece in enumerate(pieces) if piece.startswith("<|") and piece.endswith("|>")
        }

    @property
    def multilingual(self) -> bool:
        # Whisper's own rule: English-only models have 51864 tokens, multilingual ones 51865 or more.
        return self.pretrained_size >= 51865

    def prompt(self, language: str = "en", task: str = "transcribe") -> list[int]:
        """Decoder prompt without timestamps: `<|startoftranscript|>` [`<|lang|>` `<|task|>`]
        `<|notimestamps|>` (English-only models take no language or task token)."""
        middle = [f"<|{language}|>", f"<|{task}|>"] if self.multilingual else []
        return [self._ids[t] for t in ("<|startoftranscript|>", *middle, "<|notimestamps|>")]

    def text2ids(self, text: str) -> list[int]:
        """Text → ids; extra tokens standing alone map to their own ids, the rest to Whisper's BPE pieces."""
        ids: list[int] = []
        words: list[str] = []
        for word in [*text.split(), None]:
            if word is None or word in self.extra_ids:
                if words:
                    ids += self._bpe.encode(" " + " ".join(words), add_special_tokens=False)
                    words = []
                if word is not None:
                    ids.append(self.extra_ids[word])
            else:
                words.append(word)
        return ids

    def ids2text(self, ids: Sequence[int]) -> str:
        """Ids → text: special tokens and ids outside the vocabulary dropped, extra tokens as words."""
        parts: list[str] = []
        run: list[int] = []
        extras = {i: t for t, i in self.extra_ids.items()}
        for i in [*ids, None]:
            if i is None or i in extras:
                parts.append(self._bpe.decode(run))
                run = []
                if i is not None:
                    parts.append(extras[i])
            elif 0 <= i < self.pretrained_size and i not in self._special:
                run.append(i)
        return " ".join(" ".join(parts).split())


def add_token_rows(decoder: WhisperDecoder, count: int) -> None:
    """Append `count` rows to the decoder's (tied) token embedding, each the mean of the pretrained rows.

    The mean row keeps the pretrained distribution intact: every existing logit is unchanged and the new
    token's logit is the mean of the others (h·mean(E) = mean(h·E)), so it starts far from the top of the
    distribution instead of at a random point that could dominate it (Hewitt 2021, "Initializing new word
    embeddings for pretrained language models"). Training then moves it where the data needs it.
    """
    old = decoder.embed_tokens
    rows = old.weight.data.mean(dim=0, keepdim=True).expand(count, -1)
    new = torch.nn.Embedding(old.num_embeddings + count, old.embedding_dim, dtype=old.weight.dtype)
    new.weight.data = torch.cat([old.weight.data, rows]).to(old.weight.device)
    decoder.embed_tokens = new
    decoder.config.vocab_size = new.num_embeddings
