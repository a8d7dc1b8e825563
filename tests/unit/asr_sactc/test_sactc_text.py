"""Tokenizer id layout and SOT target building/splitting."""

import pytest
import sentencepiece as spm
from asr_sactc.sot import build_sot_text, split_sot_text
from asr_sactc.tokenizer import BpeTokenizer, CharTokenizer


def test_char_tokenizer_recipe_id_layout_and_round_trip():
    tok = CharTokenizer()
    assert tok.token_list[:4] == ["<blank>", "<unk>", "$", "<space>"]
    assert tok.token_list[-1] == "<sos/eos>"
    ids = tok.text2ids("it's  A $ b")
    assert ids.count(2) == 1 and 0 not in ids
    assert tok.ids2text(ids) == "IT'S A $ B"
    assert tok.text2ids("é") == [1]


def test_sot_orders_speakers_first_in_first_out_and_round_trips():
    texts, starts = ["SECOND SPEAKER", "FIRST  ONE", "THIRD"], [1.5, 0.2, 3.0]
    sot = build_sot_text(texts, starts)
    assert sot == "FIRST ONE $ SECOND SPEAKER $ THIRD"
    assert split_sot_text(sot) == ["FIRST ONE", "SECOND SPEAKER", "THIRD"]
    tok = CharTokenizer()
    assert split_sot_text(tok.ids2text(tok.text2ids(sot))) == ["FIRST ONE", "SECOND SPEAKER", "THIRD"]
    assert split_sot_text("ONLY ME") == ["ONLY ME"]
    with pytest.raises(ValueError):
        build_sot_text(["A"], [0.0, 1.0])


def test_bpe_tokenizer_puts_speaker_change_at_id_2(tmp_path):
    corpus = tmp_path / "text.txt"
    words = "THE QUICK BROWN FOX JUMPS OVER A LAZY DOG AND THE CAT SAT ON THE MAT".split()
    corpus.write_text("\n".join(" ".join(words[i:] + words[:i]) for i in range(len(words))) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp_path / "bpe"),
        vocab_size=40,
        model_type="unigram",
        user_defined_symbols="$",
        character_coverage=1.0,
    )
    tok = BpeTokenizer(str(tmp_path / "bpe.model"))
    assert tok.token_list[:3] == ["<blank>", "<unk>", "$"]
    assert tok.token_list[-1] == "<sos/eos>"
    ids = tok.text2ids("THE CAT $ A DOG")
    assert 2 in ids
    assert split_sot_text(tok.ids2text(ids)) == ["THE CAT", "A DOG"]
