"""Serialized Output Training targets: speakers first-in-first-out by start time, joined by ` $ `."""

from collections.abc import Sequence

from asr_sactc.tokenizer import SC


def build_sot_text(texts: Sequence[str], start_times: Sequence[float], sc: str = SC) -> str:
    """Join per-speaker transcripts in order of start time (ties keep the given order).

    Args:
        texts: one transcript per speaker.
        start_times: each speaker's first-word (or utterance) start in seconds.
        sc: speaker-change symbol.

    Returns:
        'w¹₁ … w¹_M $ w²₁ … w²_N [$ …]'.
    """
    if len(texts) != len(start_times):
        raise ValueError("texts and start_times must have the same length")
    order = sorted(range(len(texts)), key=lambda i: start_times[i])
    return f" {sc} ".join(" ".join(texts[i].split()) for i in order)


def split_sot_text(text: str, sc: str = SC) -> list[str]:
    """Split a serialized hypothesis into per-speaker strings (in SOT order, whitespace normalised)."""
    return [" ".join(part.split()) for part in text.split(sc)]
