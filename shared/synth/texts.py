"""Deterministic English texts for synthetic speech: a built-in sentence list, a seeded word generator and
the sentences of the BSD-licensed fortune cookie files (Debian `fortunes`, `fortunes-min`).

The sentences and the word list were written for this project (Apache-2.0, like the rest of Orate).
They avoid digits and abbreviations so every engine reads them the same way.
"""

from __future__ import annotations

import functools
import re
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

TextSource = Literal["sentences", "words", "fortunes"]

FORTUNE_DIR = Path("/usr/share/games/fortunes")
# Fortune files of plain prose (no verse, ASCII art, code or definitions).
FORTUNE_FILES = (
    "fortunes",
    "literature",
    "people",
    "platitudes",
    "wisdom",
    "humorists",
    "education",
    "kids",
    "food",
    "love",
    "pets",
    "sports",
    "miscellaneous",
    "science",
    "medicine",
    "work",
    "zippy",
    "men-women",
)
HELD_OUT_BUCKETS = 10  # one fortune sentence in ten is held out of every training set (`is_held_out`)

SENTENCES: tuple[str, ...] = (
    "The morning train was late again, so we walked to the office.",
    "Please put the blue folder on the table by the window.",
    "She found an old map of the city in her grandfather's desk.",
    "We need three more chairs before the guests arrive tonight.",
    "The river was calm and the boats moved slowly past the bridge.",
    "Could you turn the music down a little while I make this call?",
    "Our team finished the report just before the deadline.",
    "The bakery on the corner sells fresh bread every morning.",
    "He forgot his umbrella and came home soaking wet.",
    "The children built a small castle out of sand and shells.",
    "I would like a cup of tea with a slice of lemon.",
    "The meeting has moved to the large room on the second floor.",
    "A gentle wind carried the smell of rain across the fields.",
    "They painted the kitchen yellow to make it feel brighter.",
    "The library will be closed for repairs until next week.",
    "My brother plays the guitar in a band with his friends.",
    "Remember to water the plants while we are away.",
    "The museum opened a new hall for modern art and design.",
    "We watched the sun go down behind the hills.",
    "The doctor said that a short walk every day would help.",
    "This road leads to a quiet village near the lake.",
    "The cat sleeps on the warm stones in the garden.",
    "Every spring the park fills with flowers and birds.",
    "The printer ran out of paper in the middle of the job.",
    "Let us meet at the station at half past nine.",
    "He carefully wrapped the glass bowl in soft paper.",
    "The market was crowded with people buying fruit and fish.",
    "Can you tell me the way to the nearest post office?",
    "She speaks slowly so that everyone can follow her.",
    "The old clock in the hall still keeps perfect time.",
    "We planted two apple trees at the bottom of the garden.",
    "The storm knocked down a fence and several branches.",
    "Bring a warm coat because the evenings are getting cold.",
    "The pilot told us that the flight would be smooth.",
    "A small boat was tied to the end of the wooden pier.",
    "The students asked many questions after the lecture.",
    "I left my keys on the shelf next to the front door.",
    "The soup needs a little more salt and some fresh pepper.",
    "Nobody expected the quiet student to win the race.",
    "The hotel room had a view of the harbour and the sea.",
    "Turn left at the church and then follow the signs.",
    "The farmer keeps sheep and goats on the hillside.",
    "Our neighbours are having a party on Saturday night.",
    "The engine made a strange noise when it started.",
    "Write your name at the top of every page.",
    "The singer thanked the crowd and walked off the stage.",
    "We will need more time to finish the painting.",
    "The light in the hallway has been flickering all week.",
)

WORDS: tuple[str, ...] = tuple(
    """
    able about above across after again against almost alone along already always animal another answer
    apple around arrive ask autumn away baby back ball bank basket beach bear beautiful because bed before
    begin behind believe below best better between bird black blue boat body book bottle box boy bread
    bridge bright bring brother brown build busy buy cake call calm camera candle car card careful carry
    castle cat chair change cheap child choose city clean clear clock close cloud coat cold colour come
    corner country cover cup dance dark daughter day deep desk dinner doctor dog door down dream drink
    drive early earth easy eat egg empty end enough evening every face family far farm fast father field
    find fine fire fish floor flower fly follow food forest forget fresh friend front fruit full game
    garden gate gentle gift girl glass gold good green ground grow half hand happy hard hat heavy help
    high hill home horse hot house hungry idea island journey jump keep key kind kitchen lake lamp large
    late laugh leaf learn letter light listen little long look loud lucky map market milk minute money
    moon morning mother mountain music name near new night north ocean old open orange paper park party
    pencil people picture plant play pocket quiet rain read red river road room round run salt sand school
    sea season send sheep ship short shoe silver simple sing sister sleep slow small smile snow soft song
    soon sound south spring square star station stone storm story street strong summer sun sweet table
    tall teacher thank think today together tomorrow town train tree true under village visit voice wait
    walk warm watch water weather week west white wind window winter wood word work world write yellow young
    """.split()
)


@functools.cache
def fortune_sentences() -> tuple[str, ...]:
    """Sentences of 4-20 words from the prose fortune files, as written (punctuation kept, whitespace
    collapsed), sorted; cookies with digits or symbols, attributions and non-ASCII sentences are dropped.
    Empty when the fortunes packages are not installed."""
    out = set()
    for name in FORTUNE_FILES:
        path = FORTUNE_DIR / name
        if not path.is_file():
            continue
        for cookie in path.read_text(encoding="latin-1").split("\n%\n"):
            body = re.split(r"\n\s*--", cookie)[0]
            if re.search(r"[0-9@#<>{}|\\/_=*&^~\[\]]", body):
                continue
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(body.split())):
                if 4 <= len(normalize_transcript(sentence).split()) <= 20 and sentence.isascii():
                    out.add(sentence)
    return tuple(sorted(out))


def is_held_out(sentence: str) -> bool:
    """Whether a sentence belongs to the evaluation share: a hash of its normalised words, so the split is
    the same for every consumer and every punctuation of the same words."""
    return zlib.crc32(normalize_transcript(sentence).encode()) % HELD_OUT_BUCKETS == 0


def fortune_split(held_out: bool) -> tuple[str, ...]:
    """The fortune sentences of the evaluation share (held_out) or of the training share."""
    return tuple(s for s in fortune_sentences() if is_held_out(s) == held_out)


def sentence_pool(source: Literal["sentences", "fortunes"]) -> tuple[str, ...]:
    """Whole sentences to draw from: SENTENCES, or the training share of the fortune sentences."""
    if source == "sentences":
        return SENTENCES
    pool = fortune_split(held_out=False)
    if not pool:
        raise ValueError(f"no fortune files under {FORTUNE_DIR} (apt-get install fortunes fortunes-min)")
    return pool


def draw_text(rng: np.random.Generator, source: TextSource = "sentences") -> str:
    """One text: a sentence from SENTENCES, four to twelve random WORDS ending in a full stop, or a fortune
    sentence that is not held out."""
    if source in ("sentences", "fortunes"):
        pool = sentence_pool(source)
        return pool[int(rng.integers(len(pool)))]
    if source == "words":
        count = int(rng.integers(4, 13))
        words = [WORDS[int(i)] for i in rng.integers(len(WORDS), size=count)]
        return " ".join(words).capitalize() + "."
    raise ValueError(f"unknown text source {source!r}; use 'sentences', 'words' or 'fortunes'")


def normalize_transcript(text: str) -> str:
    """LibriSpeech style: upper case, apostrophes kept, other punctuation dropped, single spaces."""
    return " ".join(re.sub(r"[^A-Z' ]+", " ", text.upper()).split())
