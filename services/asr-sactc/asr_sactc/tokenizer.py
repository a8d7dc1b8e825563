"""Token ids: the recipe's layout (0 `<blank>`, 1 `<unk>`, 2 `$`, …, `<sos/eos>`) or Whisper's plus `$`."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

BLANK, UNK, SC = "<blank>", "<unk>", "$"
SPACE, SOS_EOS = "<space>", "<sos/eos>"
# LibriSpeech transcripts are upper-case letters and the apostrophe.
LIBRISPEECH_CHARS = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class TokenIds:
    """Ids the model needs beyond the token list: CTC blank, speaker change (`ctc_conf.constrain_y`), the
    decoder prompt that precedes the first output token and the end token."""

    blank: int
    sc: int
    sos: tuple[int, ...]
    eos: int

    @classmethod
    def recipe(cls, vocab_size: int) -> "TokenIds":
        """The recipe's layout: 0 `<blank>`, 2 `$`, `<sos/eos>` last."""
        return cls(blank=0, sc=2, sos=(vocab_size - 1,), eos=vocab_size - 1)


class Tokenizer(Protocol):
    """What the model, trainer and decoder need from a tokenizer."""

    token_list: list[str]
    ids: TokenIds

    def text2ids(self, text: str) -> list[int]: ...

    def ids2text(self, ids: Sequence[int]) -> str: ...


class CharTokenizer:
    """Characters for tiny configs: `<blank>`, `<unk>`, `$`, `<space>`, the characters, `<sos/eos>`.

    Args:
        characters: the character inventory after `<space>` (LibriSpeech's by default).
        upper_case: upper-case text before lookup (LibriSpeech transcripts are upper-case).
    """

    def __init__(self, characters: str = LIBRISPEECH_CHARS, upper_case: bool = True) -> None:
        if SC in characters or " " in characters:
            raise ValueError("characters must not contain '$' or a space; they have fixed ids")
        self.upper_case = upper_case
        self.token_list = [BLANK, UNK, SC, SPACE, *characters, SOS_EOS]
        self._ids = {tok: i for i, tok in enumerate(self.token_list)}
        self.ids = TokenIds.recipe(len(self.token_list))

    def text2ids(self, text: str) -> list[int]:
        """'A B $ C' → ids of A <space> B <space> $ <space> C (unknown characters → `<unk>`)."""
        text = " ".join((text.upper() if self.upper_case else text).split())
        return [self._ids[SPACE] if ch == " " else self._ids.get(ch, self._ids[UNK]) for ch in text]

    def ids2text(self, ids: Sequence[int]) -> str:
        """Inverse of text2ids; blank, unk and sos/eos are dropped."""
        special = {self._ids[BLANK], self._ids[UNK], self._ids[SOS_EOS]}
        chars = [" " if self.token_list[i] == SPACE else self.token_list[i] for i in ids if i not in special]
        return " ".join("".join(chars).split())


class BpeTokenizer:
    """SentencePiece model trained as in the recipe (unigram 5000, `--user_defined_symbols $`).

    ESPnet's token list drops SentencePiece's first three pieces (`<unk>`, `<s>`, `</s>`) and prepends
    `<blank>`, `<unk>`, so the user-defined `$` (piece 3) becomes id 2 and `<sos/eos>` is appended.

    Args:
        bpemodel: path to the SentencePiece `.model` file.
    """

    def __init__(self, bpemodel: str) -> None:
        import sentencepiece as spm

        self._sp = spm.SentencePieceProcessor(model_file=bpemodel)
        pieces = [self._sp.id_to_piece(i) for i in range(3, self._sp.get_piece_size())]
        self.token_list = [BLANK, UNK, *pieces, SOS_EOS]
        self._ids = {tok: i for i, tok in enumerate(self.token_list)}
        self.ids = TokenIds.recipe(len(self.token_list))

    def text2ids(self, text: str) -> list[int]:
        """Text → ids via the SentencePiece pieces (pieces outside the list → `<unk>`)."""
        return [self._ids.get(p, self._ids[UNK]) for p in self._sp.encode(text, out_type=str)]

    def ids2text(self, ids: Sequence[int]) -> str:
        """Ids → text; special tokens are dropped and `$` stays a separate word."""
        special = {self._ids[BLANK], self._ids[UNK], self._ids[SOS_EOS]}
        pieces = [self.token_list[i] for i in ids if i not in special]
        text = self._sp.decode_pieces(pieces)
        return " ".join(text.replace(SC, f" {SC} ").split())


class WhisperTokenizer:
    """Whisper's byte-level BPE ids (the pretrained decoder's own), then `$` and the CTC `<blank>` appended.

    Every pretrained id keeps its meaning (`shared.encoders.WhisperVocabulary`); `$` is a new token, not the
    byte-level piece "$" (id 3), so a speaker change never collides with text. The decoder is prompted with
    `<|startoftranscript|>` [`<|en|>` `<|transcribe|>`] `<|notimestamps|>` and ends with `<|endoftext|>`.

    Args:
        model: `base`, `tiny.en` or a CTranslate2 Whisper folder (`shared.encoders.whisper_model_dir`).
        lower_case: lower-case text before encoding and upper-case the decoded text, so LibriSpeech-style
            upper-case references become Whisper's common lower-case pieces and come back in their own case.
    """

    def __init__(self, model: str = "base", lower_case: bool = True) -> None:
        from shared.encoders import WhisperVocabulary, whisper_model_dir

        self._vocab = WhisperVocabulary(whisper_model_dir(model), extra_tokens=(SC, BLANK))
        self.lower_case = lower_case
        self.token_list = self._vocab.token_list
        self.pretrained_size = self._vocab.pretrained_size
        sc, blank = (self._vocab.extra_ids[t] for t in (SC, BLANK))
        self.ids = TokenIds(blank=blank, sc=sc, sos=tuple(self._vocab.prompt()), eos=self._vocab.eot)

    def text2ids(self, text: str) -> list[int]:
        """'A B $ C' → Whisper pieces of " a b", the `$` id, pieces of " c"."""
        return self._vocab.text2ids(text.lower() if self.lower_case else text)

    def ids2text(self, ids: Sequence[int]) -> str:
        """Ids → text (special tokens and blank dropped, `$` kept as a word)."""
        text = self._vocab.ids2text([i for i in ids if i != self.ids.blank])
        return text.upper() if self.lower_case else text


TOKENIZERS: dict[str, type] = {"char": CharTokenizer, "bpe": BpeTokenizer, "whisper": WhisperTokenizer}
