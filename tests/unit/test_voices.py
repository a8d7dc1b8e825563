"""shared.voices: each installed family speaks with sane timings; unknown and missing voices say why."""

from __future__ import annotations

import numpy as np
import pytest

from shared import media, voices

TEXT = "The quick brown fox jumps over the lazy dog, twice."
# One representative per family; a family that is not installed here is skipped.
VOICES = [
    "flite:rms",
    "flite:kal",
    "festival:kal_diphone",
    "festival:cmu_us_slt_arctic_hts",
    "espeak:en-us+f3",
]


def _require(voice_id: str) -> None:
    family = voice_id.split(":")[0]
    reason = voices.FAMILIES[family].unavailable_reason()
    if reason:
        pytest.skip(reason)
    if voice_id not in voices.available_voices():
        pytest.skip(f"{voice_id} is not installed")


def _check_timings(timings: list[voices.Timing], duration: float) -> None:
    assert timings
    for t in timings:
        assert 0.0 <= t.start <= t.end <= duration + 1e-9, t
    starts = [t.start for t in timings]
    assert starts == sorted(starts)
    for a, b in zip(timings, timings[1:], strict=False):
        assert a.end <= b.start + 1e-6, (a, b)  # spans follow one another without overlapping


@pytest.mark.parametrize("voice_id", VOICES)
def test_voice_speaks_with_monotonic_timings(voice_id: str) -> None:
    _require(voice_id)
    speech = voices.synthesize(TEXT, voice_id, sample_rate=16000)
    assert speech.sample_rate == 16000 and speech.waveform.dtype == np.float32 and speech.waveform.ndim == 1
    assert 1.0 < speech.duration_s < 10.0
    assert not media.is_silent(speech.waveform)
    assert media.loudness_lufs(speech.waveform, 16000) > -45.0
    _check_timings(speech.phones, speech.duration_s)
    _check_timings(speech.words, speech.duration_s)
    assert len(speech.words) == 10
    assert speech.words[1].label.lower() == "quick"
    # Words are made of phones: each word lies inside the spoken part.
    spoken = [p for p in speech.phones if p.label != "pau"]
    assert spoken[0].start <= speech.words[0].start and speech.words[-1].end <= spoken[-1].end + 1e-6


def test_output_rate_is_honoured() -> None:
    _require("espeak:en-us")
    native = voices.synthesize("Hello there.", "espeak:en-us", sample_rate=22050)
    resampled = voices.synthesize("Hello there.", "espeak:en-us", sample_rate=8000)
    assert native.sample_rate == 22050 and resampled.sample_rate == 8000
    assert abs(resampled.waveform.shape[0] - round(native.waveform.shape[0] * 8000 / 22050)) <= 1


def test_espeak_is_reproducible_across_calls() -> None:
    # libespeak-ng keeps state between utterances in one process; each call must still give the same audio.
    _require("espeak:en-us")
    first = voices.synthesize("Reproducible speech, please.", "espeak:en-us")
    voices.synthesize("Something else in between.", "espeak:en-us+m3")
    second = voices.synthesize("Reproducible speech, please.", "espeak:en-us")
    assert first.waveform.tobytes() == second.waveform.tobytes()
    assert first.words == second.words


def test_espeak_resolves_languages_beyond_the_catalogue() -> None:
    _require("espeak:en-us")
    info = voices.get_voice("espeak:fr-fr+f2")
    assert (info.language, info.gender) == ("fr-fr", "f")
    speech = voices.synthesize("Bonjour tout le monde.", "espeak:fr-fr+f2")
    # espeak speaks "tout le monde" as one unit; each of its words still gets its own span.
    assert [w.label for w in speech.words] == ["Bonjour", "tout", "le", "monde"]
    _check_timings(speech.words, speech.duration_s)
    assert all(not p.label.startswith("(") for p in speech.phones)


@pytest.mark.parametrize("voice_id", ["espeak:en-us", "espeak:en-gb+f3"])
def test_espeak_times_each_word_of_a_grouped_sentence(voice_id: str) -> None:
    # Regression: espeak-ng sends one word event for "out of", "in the" and "of the", which came out as
    # three two-word "words"; every word of the text needs its own interval inside the speech.
    _require(voice_id)
    text = "The printer ran out of paper in the middle of the job."
    speech = voices.synthesize(text, voice_id)
    assert [w.label for w in speech.words] == text.rstrip(".").split()
    _check_timings(speech.words, speech.duration_s)
    assert all(w.end > w.start for w in speech.words)
    spoken = [p for p in speech.phones if p.label != "pau"]
    assert speech.words[0].start == spoken[0].start and speech.words[-1].end == spoken[-1].end
    # No word stretches over the sentence: the longest ("printer", "job") is well under half of it.
    assert max(w.end - w.start for w in speech.words) < 0.3 * (spoken[-1].end - spoken[0].start)


def test_flite_words_follow_its_text_normalisation() -> None:
    _require("flite:slt")
    speech = voices.synthesize("Dr. Smith has 12 cats.", "flite:slt")
    assert [w.label for w in speech.words][:2] == ["doctor", "smith"]
    assert "twelve" in [w.label for w in speech.words]


def test_catalogue_ids_and_metadata() -> None:
    catalogue = voices.available_voices()
    for voice_id, info in catalogue.items():
        assert voice_id == f"{info.family}:{info.name}"
        assert info.gender in ("f", "m", "unknown") and info.native_rate > 0
        assert voices.get_voice(voice_id) == info
    statuses = voices.voice_families()
    assert set(statuses) == {"flite", "festival", "espeak", "ttskit"}
    assert sum(s.voices for s in statuses.values()) == len(catalogue)


@pytest.mark.parametrize("voice_id", ["flite:nobody", "nofamily:rms", "rms", ""])
def test_unknown_voice_lists_valid_ids(voice_id: str) -> None:
    family = voices.FAMILIES.get(voice_id.partition(":")[0])
    if family is not None and (reason := family.unavailable_reason()):
        pytest.skip(f"{reason} (its voices are reported unavailable, not unknown)")
    with pytest.raises(voices.UnknownVoice) as caught:
        voices.synthesize("Hello.", voice_id)
    assert isinstance(caught.value, KeyError)
    message = str(caught.value)
    assert message.startswith(f"unknown voice {voice_id!r}")
    for valid in list(voices.available_voices())[:3]:
        assert valid in message


def test_ttskit_reports_itself_unavailable_when_missing() -> None:
    status = voices.voice_families()["ttskit"]
    if status.available:
        pytest.skip("ttskit is installed here")
    assert "ttskit is not installed" in (status.reason or "")
    assert not [v for v in voices.available_voices() if v.startswith("ttskit:")]
    with pytest.raises(voices.VoiceUnavailable, match="not installed"):
        voices.synthesize("你好", "ttskit:biaobei")


def test_empty_text_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        voices.synthesize("   ", "espeak:en-us")
