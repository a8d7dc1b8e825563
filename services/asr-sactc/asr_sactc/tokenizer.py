"""Token ids in the recipe's layout: 0 `<blank>`, 1 `<unk>`, 2 `$` (speaker change), …, last `<sos/eos>`."""

from collections.abc import Sequence
from typing import Protocol

BLANK, UNK, SC = "<blank>", "<unk>", "$"
SPACE, SOS_EOS = "<space>", "<sos/eos>"
# LibriSpeech transcripts are upper-case letters and the apostrophe.
LIBRISPEECH_CHARS = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Tokenizer(Protocol):
    """What the model, trainer and decoder need from a tokenizer."""

    token_list: list[str]

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

    def text2ids(self, text: str) -> list[int]:
        """Text → ids via the SentencePiece pieces (pieces outside the list → `<unk>`)."""
        return [self._ids.get(p, self._ids[UNK]) for p in self._sp.encode(text, out_type=str)]

    def ids2text(self, ids: Sequence[int]) -> str:
        """Ids → text; special tokens are dropped and `$` stays a separate word."""
        special = {self._ids[BLANK], self._ids[UNK], self._ids[SOS_EOS]}
        pieces = [self.token_list[i] for i in ids if i not in special]
        text = self._sp.decode_pieces(pieces)
        return " ".join(text.replace(SC, f" {SC} ").split())


TOKENIZERS: dict[str, type] = {"char": CharTokenizer, "bpe": BpeTokenizer}
