"""Synthesizer: phrase splitting, streaming laid end to end equals the whole utterance, the first phrase is
out before later ones are computed and reads no later text, each phrase continues from the one before
(lead-in and gesture seed), voice and language choice, and the input errors with their reasons."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tts_gesture.config import FastTalkerConfig
from tts_gesture.inference import Synthesizer, TextError, VoiceError, split_phrases
from tts_gesture.model import FastTalker
from tts_gesture.model.frame_rates import motion_frames

FRAMES_PER_PHONEME = 3
TEXT = "Hello there, my friend. This is a test; it works!"


def tiny_synthesizer(frames_per_phoneme: int = FRAMES_PER_PHONEME, layout: str = "smplx") -> Synthesizer:
    """Random tiny weights, except that every phoneme lasts frames_per_phoneme mel frames (untrained
    duration predictors give arbitrary, often zero, lengths)."""
    config = FastTalkerConfig.from_yaml("tiny").model_copy(update={"layout": layout})
    torch.manual_seed(0)
    model = FastTalker(config)
    duration = model.variance_adaptor.duration_predictor.linear_layer
    torch.nn.init.zeros_(duration.weight)
    torch.nn.init.constant_(duration.bias, math.log1p(frames_per_phoneme))
    return Synthesizer(model, config)


@pytest.fixture(scope="module")
def synthesizer() -> Synthesizer:
    return tiny_synthesizer()


def test_text_splits_into_phrases_at_punctuation() -> None:
    assert split_phrases(" Hello there,  my friend. It costs 3,000.50 dollars!\n") == [
        "Hello there,",
        "my friend.",
        "It costs 3,000.50 dollars!",
    ]
    assert split_phrases("你好，欢迎。今天很好") == ["你好，", "欢迎。", "今天很好"]


def test_stream_laid_end_to_end_is_the_whole_utterance(synthesizer: Synthesizer) -> None:
    chunks = list(synthesizer.stream(TEXT, "tiny-en"))
    whole = synthesizer.synthesize(TEXT, "tiny-en")
    assert [c.text for c in chunks] == ["Hello there,", "my friend.", "This is a test;", "it works!"]
    np.testing.assert_array_equal(np.concatenate([c.waveform for c in chunks]), whole.waveform)
    np.testing.assert_array_equal(np.concatenate([c.pose for c in chunks]), whole.pose)
    mel = len(whole.phonemes) * FRAMES_PER_PHONEME
    hop, rate = synthesizer.config.audio.hop_size, synthesizer.config.audio.frame_rate
    assert whole.waveform.dtype == np.float32 and len(whole.waveform) == mel * hop
    # Motion on the utterance's own 30 fps grid: no drift however many phrases.
    assert whole.pose.shape == (motion_frames(mel, rate), synthesizer.layout.pose_dims)
    for name in ("expression", "translation", "foot_contact"):
        assert len(getattr(whole, name)) == len(whole.pose)
    assert ((whole.foot_contact >= 0) & (whole.foot_contact <= 1)).all()
    assert [c.start_s for c in chunks] == pytest.approx(np.cumsum([0] + [c.audio_s for c in chunks[:-1]]))
    times = whole.phoneme_times()
    assert times[0][1] == 0 and times[-1][2] == pytest.approx(whole.audio_s)
    # Each chunk times its phonemes from the start of the utterance, as the whole does.
    by_chunk = [t for c in chunks for t in c.phoneme_times()]
    assert [t[0] for t in by_chunk] == whole.phonemes
    np.testing.assert_allclose([t[1:] for t in by_chunk], [t[1:] for t in times])


def test_the_first_phrase_is_out_before_later_phrases_are_computed(synthesizer: Synthesizer) -> None:
    encoded: list[int] = []
    hook = synthesizer.model.encoder.register_forward_hook(
        lambda _m, args, _o: encoded.append(args[0].shape[1])
    )
    try:
        stream = synthesizer.stream(TEXT, "tiny-en")
        assert encoded == []
        first = next(stream)
        assert len(encoded) == 1 and encoded[0] == len(first.phonemes)
        rest = list(stream)
    finally:
        hook.remove()
    assert len(encoded) == 1 + len(rest)


def test_the_first_phrase_reads_no_later_text(synthesizer: Synthesizer) -> None:
    first = next(synthesizer.stream(TEXT, "tiny-en"))
    alone = synthesizer.synthesize("Hello there,", "tiny-en")
    np.testing.assert_array_equal(first.waveform, alone.waveform)
    np.testing.assert_array_equal(first.pose, alone.pose)


def test_each_phrase_continues_from_the_one_before(synthesizer: Synthesizer, monkeypatch) -> None:
    seeds: list[torch.Tensor | None] = []
    decode = synthesizer.model.decode

    def recording(features, speakers, onset_targets=None, seed=None):
        seeds.append(seed)
        return decode(features, speakers, onset_targets, seed)

    monkeypatch.setattr(synthesizer.model, "decode", recording)
    first, second = synthesizer.stream("Hello there, my friend.", "tiny-en")
    assert seeds[0] is None
    # The gesture seed is the motion the first phrase ended on (pose, expression, translation).
    ended = np.concatenate([first.pose, first.expression, first.translation], axis=1)
    seed = seeds[1][0].numpy()
    assert len(seed) == synthesizer.seed_frames
    tail = ended[-synthesizer.seed_frames - 1 :]
    assert any(np.array_equal(seed, tail[i : i + len(seed)]) for i in range(len(tail) - len(seed) + 1))
    # And the lead-in changes what follows: the same phrase alone starts cold.
    alone = synthesizer.synthesize("my friend.", "tiny-en")
    assert second.waveform.shape == alone.waveform.shape and second.pose.shape == alone.pose.shape
    assert not np.allclose(second.waveform, alone.waveform)
    assert not np.allclose(second.pose, alone.pose)


def test_voices_and_defaults(synthesizer: Synthesizer) -> None:
    assert [(v.name, v.language) for v in synthesizer.voices] == [("tiny-en", "en"), ("tiny-zh", "zh")]
    assert synthesizer.plan("Hello.").voice.name == "tiny-en"
    assert synthesizer.plan("你好。", language="zh").voice.name == "tiny-zh"
    assert synthesizer.plan("你好。", "tiny-zh", language="zh").speaker == 1
    chinese = synthesizer.synthesize("你好，欢迎。", "tiny-zh")
    assert chinese.phonemes[:2] == ["n", "i3"] and len(chinese.waveform) > 0


@pytest.mark.parametrize(
    ("text", "voice", "language", "error", "reason"),
    [
        ("", "", "", TextError, "text is empty: give 1 to 600 characters"),
        ("   ", "", "", TextError, "text is empty"),
        ("a " * 301, "", "", TextError, "text is 602 characters long; at most 600"),
        ("... !", "", "", TextError, "nothing to speak"),
        ("Hello, Мир ☃.", "tiny-en", "", TextError, "cannot read these characters: 'и' 'м' 'р' '☃'"),
        ("你好 hello", "tiny-zh", "", TextError, "cannot read these characters: 'e' 'h' 'l' 'o'"),
        ("Hello.", "nobody", "", VoiceError, "unknown voice 'nobody'; voices: tiny-en, tiny-zh"),
        ("Hello.", "", "fr", VoiceError, "language 'fr' is not supported .*this service speaks en, zh"),
        ("Hello.", "tiny-en", "zh", VoiceError, "voice 'tiny-en' speaks en, not zh; voices of zh: tiny-zh"),
    ],
    ids=[
        "empty",
        "blank",
        "too-long",
        "punctuation",
        "cyrillic",
        "latin-in-zh",
        "voice",
        "language",
        "mismatch",
    ],
)
def test_bad_input_names_the_problem(synthesizer, text, voice, language, error, reason) -> None:
    with pytest.raises(error, match=reason):
        synthesizer.stream(text, voice, language=language)  # raised at the call, before any phrase


def test_unreadable_characters_are_listed() -> None:
    with pytest.raises(TextError) as caught:
        tiny_synthesizer().plan("Hi 😀, bye ☃.")
    assert caught.value.characters == ["☃", "😀"]


def test_a_phrase_of_zero_frames_gives_an_empty_part_with_its_phonemes() -> None:
    chunks = list(tiny_synthesizer(frames_per_phoneme=0).stream("Hello there, my friend."))
    assert [len(c.waveform) for c in chunks] == [0, 0] and [len(c.pose) for c in chunks] == [0, 0]
    assert chunks[1].phonemes and chunks[1].durations_s.sum() == 0


def test_open_rig_motion(synthesizer: Synthesizer) -> None:
    open_rig = tiny_synthesizer(layout="open-rig").synthesize("Hello there.")
    assert open_rig.pose.shape[1] == 624 and open_rig.expression.shape[1] == 52
    assert ((open_rig.expression >= 0) & (open_rig.expression <= 1)).all()


def save_tiny(folder: Path, synthesizer: Synthesizer) -> Path:
    """config.yaml and model.pth, the checkpoint folder layout load_checkpoint reads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(synthesizer.config.model_dump(mode="json")))
    torch.save(synthesizer.model.state_dict(), folder / "model.pth")
    return folder


def test_from_checkpoint_speaks_as_the_saved_model(synthesizer: Synthesizer, tmp_path: Path) -> None:
    loaded = Synthesizer.from_checkpoint(save_tiny(tmp_path / "tiny", synthesizer))
    np.testing.assert_array_equal(loaded.synthesize(TEXT).waveform, synthesizer.synthesize(TEXT).waveform)
