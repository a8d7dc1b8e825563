"""Training data: TextGrid reading, g2p-to-recording alignment, the studio loader, the cache and batching,
the fortune sentences' held-out split, checkpoint folders and the train command."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tts_gesture.checkpoints import load_checkpoint, save_checkpoint
from tts_gesture.config import FastTalkerConfig
from tts_gesture.data import AlignmentError, TrainingItem, align_durations, collate, phoneme_means
from tts_gesture.model import FastTalker
from tts_gesture.text.symbols import SYMBOLS
from tts_gesture.train import length_batches, noam_lr

from shared.synth import texts
from shared.synth.gestures import read_textgrid, textgrid
from shared.synth.tts.base import Timing

RATE = 100.0  # mel frames per second in the alignment tests: one frame per 10 ms


def test_a_written_textgrid_reads_back_with_its_silences() -> None:
    words = [Timing("hello", 0.1, 0.5), Timing('say "hi"', 0.7, 1.0)]
    tiers = read_textgrid(textgrid({"words": words, "phones": [Timing("hh", 0.1, 0.2)]}, 1.2))
    assert [(t.label, t.start, t.end) for t in tiers["words"]] == [
        ("", 0.0, 0.1),
        ("hello", 0.1, 0.5),
        ("", 0.5, 0.7),
        ('say "hi"', 0.7, 1.0),
        ("", 1.0, 1.2),
    ]
    assert [t.label for t in tiers["phones"]] == ["", "hh", ""]


def _timings(spec: list[tuple[str, float, float]]) -> list[Timing]:
    return [Timing(label, start, end) for label, start, end in spec]


def test_phones_give_the_boundaries_and_a_comma_pause_takes_the_silence() -> None:
    # "cat, dog." -> K AE1 T sp D AO1 G sp; recorded with a 0.2 s pause after "cat" and 0.1 s at the end.
    words = _timings([("", 0.0, 0.1), ("cat", 0.1, 0.4), ("", 0.4, 0.6), ("dog", 0.6, 0.9), ("", 0.9, 1.0)])
    phones = _timings(
        [
            ("k", 0.1, 0.2),
            ("ae", 0.2, 0.35),
            ("t", 0.35, 0.4),
            ("d", 0.6, 0.7),
            ("ao", 0.7, 0.8),
            ("g", 0.8, 0.9),
        ]
    )
    ids, durations = align_durations("cat, dog.", words, phones, start=0.1, frames=90, frame_rate=RATE)
    assert [SYMBOLS[i] for i in ids] == ["K", "AE1", "T", "sp", "D", "AO1", "G", "sp"]
    assert durations.tolist() == [10, 15, 5, 20, 10, 10, 10, 10]


def test_an_unpunctuated_silence_joins_the_word_before_and_counts_fall_back_to_even_shares() -> None:
    # "my cat" -> M AY1 | K AE1 T; the recording has three phones for "my" (no match: even shares).
    words = _timings([("my", 0.0, 0.3), ("", 0.3, 0.4), ("cat", 0.4, 0.7)])
    phones = _timings([("m", 0.0, 0.1), ("a", 0.1, 0.2), ("y", 0.2, 0.3), ("k", 0.4, 0.5), ("ae", 0.5, 0.6)])
    ids, durations = align_durations("my cat", words, phones, start=0.0, frames=75, frame_rate=RATE)
    assert [SYMBOLS[i] for i in ids] == ["M", "AY1", "K", "AE1", "T", "sp"]
    assert durations.tolist() == [15, 25, 10, 10, 10, 5]
    assert durations.sum() == 75


def test_flite_s_split_clitic_is_one_word_and_a_word_count_mismatch_is_an_alignment_error() -> None:
    words = _timings([("that", 0.0, 0.2), ("'s", 0.2, 0.3), ("it", 0.3, 0.5)])
    ids, durations = align_durations("That's it", words, [], start=0.0, frames=50, frame_rate=RATE)
    assert [SYMBOLS[i] for i in ids] == ["DH", "AE1", "T", "S", "IH1", "T", "sp"]
    assert durations.sum() == 50
    with pytest.raises(AlignmentError, match="2 recorded words for 3 g2p words"):
        align_durations("that is it", _timings([("that", 0, 0.2), ("is", 0.2, 0.3)]), [], 0.0, 30, RATE)


def test_phoneme_means_skip_unvoiced_frames() -> None:
    values = np.array([1.0, np.nan, 3.0, np.nan, np.nan, 5.0], dtype=np.float32)
    np.testing.assert_allclose(phoneme_means(values, np.array([3, 2, 1, 0])), [2.0, np.nan, 5.0, np.nan])


def test_fortune_sentences_split_into_disjoint_training_and_held_out_shares() -> None:
    if not texts.fortune_sentences():
        pytest.skip("apt-get install fortunes fortunes-min")
    held_out, training = texts.fortune_split(True), texts.fortune_split(False)
    assert len(held_out) >= 50 and len(training) > 10 * len(held_out) / 2
    normalised = {texts.normalize_transcript(s) for s in training}
    assert not normalised & {texts.normalize_transcript(s) for s in held_out}
    assert all(
        not texts.is_held_out(texts.draw_text(np.random.default_rng(i), "fortunes")) for i in range(50)
    )


def _utterance(uid: str, phonemes: int, frames: int, config: FastTalkerConfig) -> TrainingItem:
    rng = np.random.default_rng(phonemes)
    durations = np.full(phonemes, frames // phonemes)
    durations[-1] += frames - durations.sum()
    motion = round(frames * 30 / config.audio.frame_rate) + 3  # longer than the mel: collate cuts it
    return TrainingItem(
        id=uid,
        speaker=config.speakers[0].name,
        text="x",
        phonemes=rng.integers(2, 80, phonemes),
        durations=durations,
        pitch=np.where(np.arange(phonemes) % 2, np.nan, 5.0).astype(np.float32),
        energy=np.full(phonemes, 2.0, np.float32),
        mel=rng.standard_normal((frames, config.audio.num_mels)).astype(np.float32),
        onsets=np.zeros(frames, np.float32),
        pose=rng.standard_normal((motion, 624)).astype(np.float32),
        expression=rng.random((motion, 52)).astype(np.float32),
        translation=np.zeros((motion, 3), np.float32),
        foot_contact=np.ones((motion, 4), np.float32),
    )


@pytest.fixture
def open_rig_tiny(tiny_config: FastTalkerConfig) -> FastTalkerConfig:
    return tiny_config.model_copy(update={"layout": "open-rig"})


def test_the_cache_round_trips_and_batches_pad_to_the_longest(open_rig_tiny: FastTalkerConfig) -> None:
    from tts_gesture.data import SpeakerStats

    items = [_utterance("a", 5, 40, open_rig_tiny), _utterance("b", 8, 64, open_rig_tiny)]
    back = [TrainingItem.from_state(torch.load(_save(u), weights_only=False)) for u in items]
    np.testing.assert_allclose(back[1].mel, items[1].mel, atol=2e-3)  # float16 on disk
    stats = {open_rig_tiny.speakers[0].name: SpeakerStats((5.0, 0.5), (2.0, 1.0))}
    batch = collate(back, [s.name for s in open_rig_tiny.speakers], stats, open_rig_tiny.audio.frame_rate)
    assert batch.texts.shape == (2, 8) and batch.mels.shape == (2, 64, open_rig_tiny.audio.num_mels)
    assert batch.durations.sum(1).tolist() == batch.mel_lens.tolist() == [40, 64]
    assert batch.motion_lens.tolist() == [12, 19] and batch.pose.shape == (2, 19, 624)
    assert batch.pitches[0, :5].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]  # mean (5) and unvoiced -> 0


def _save(item: TrainingItem) -> Path:
    path = Path(f"/tmp/tts-data-{item.id}-{random.random()}.pt")
    torch.save(item.state(), path)
    return path


def test_length_batches_bound_padded_frames_and_cover_every_item(open_rig_tiny: FastTalkerConfig) -> None:
    items = [_utterance(str(i), 4, 20 + 7 * i, open_rig_tiny) for i in range(10)]
    batches = length_batches(items, 150, random.Random(0))
    assert sorted(u.id for b in batches for u in b) == sorted(u.id for u in items)
    assert all(len(b) * max(u.mel.shape[0] for u in b) <= 150 or len(b) == 1 for b in batches)


def test_the_learning_rate_warms_up_to_its_peak_then_decays_as_noam() -> None:
    assert noam_lr(100, 1e-3, 400) == pytest.approx(2.5e-4)
    assert noam_lr(400, 1e-3, 400) == pytest.approx(1e-3)
    assert noam_lr(1600, 1e-3, 400) == pytest.approx(5e-4)


def test_a_checkpoint_folder_round_trips_and_refuses_a_mismatched_config(
    tmp_path: Path, open_rig_tiny: FastTalkerConfig
) -> None:
    torch.manual_seed(0)
    model = FastTalker(open_rig_tiny)
    save_checkpoint(tmp_path / "ck", model, open_rig_tiny)
    loaded, config = load_checkpoint(tmp_path / "ck")
    assert config == open_rig_tiny and not loaded.training
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    other = yaml.safe_load((tmp_path / "ck" / "config.yaml").read_text())
    other["transformer"]["encoder_layer"] = 2
    (tmp_path / "ck" / "config.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(RuntimeError, match="missing"):
        load_checkpoint(tmp_path / "ck")


def test_a_packaged_melgan_checkpoint_leaves_the_vocoder_out(tmp_path: Path) -> None:
    pytest.importorskip("ttskit")
    config = FastTalkerConfig.from_yaml("demo")
    model = FastTalker(config)
    save_checkpoint(tmp_path, model, config)
    saved = torch.load(tmp_path / "model.pth", weights_only=True)
    assert saved and not any(k.startswith("vocoder.") for k in saved)
    loaded, _ = load_checkpoint(tmp_path)
    wave = loaded.vocode(torch.full((1, 20, 80), -6.0))
    assert wave.shape == (1, 20 * 256) and float(wave.abs().max()) <= 1.0
    with pytest.raises(ValueError, match="centred"):
        FastTalkerConfig.model_validate(
            {**config.model_dump(), "audio": {**config.audio.model_dump(), "center": False}}
        )


@pytest.mark.skipif(shutil.which("flite") is None, reason="apt-get install flite")
def test_studio_triples_prepare_and_train_end_to_end(tmp_path: Path, open_rig_tiny: FastTalkerConfig) -> None:
    """Studio triples -> prepare -> the train command -> a checkpoint that loads."""
    from tts_gesture.prepare import main as prepare_main
    from tts_gesture.train import main as train_main

    from shared.data_cli import main as data_main

    assert (
        data_main(
            [
                "gestures",
                "--out",
                str(tmp_path / "studio"),
                "-n",
                "3",
                "--voices",
                "flite:slt",
                "--sentences",
                "1",
                "1",
                "--test-fraction",
                "0.4",
            ]
        )
        == 0
    )
    config = open_rig_tiny.model_dump(mode="json")
    config["speakers"] = [{"name": "flite-slt", "language": "en"}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    prepare_main(
        [
            "--config",
            str(tmp_path / "c.yaml"),
            "--studio",
            str(tmp_path / "studio"),
            "--out",
            str(tmp_path / "cache"),
            "--workers",
            "1",
        ]
    )
    summary = json.loads((tmp_path / "cache" / "stats.json").read_text())
    assert summary["train"] + summary["dev"] + summary["skipped"] == 3 and summary["train"] >= 1
    item = TrainingItem.from_state(torch.load(tmp_path / "cache" / "train.pt", weights_only=False)[0])
    assert item.durations.sum() == item.mel.shape[0] and item.pose.shape[1] == 624
    train_main(
        [
            "--config",
            str(tmp_path / "c.yaml"),
            "--data",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / "ck"),
            "--max-steps",
            "2",
            "--eval-every",
            "1",
        ]
    )
    common = ["--config", str(tmp_path / "c.yaml"), "--data", str(tmp_path / "cache"), "--out"]
    train_main([*common, str(tmp_path / "ck"), "--max-steps", "3", "--eval-every", "1", "--resume"])
    log = [json.loads(line) for line in (tmp_path / "ck" / "train.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]  # the resumed run went on counting
    model, _ = load_checkpoint(tmp_path / "ck")
    assert model.speaker_emb.weight.shape[0] == 1
