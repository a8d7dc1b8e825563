"""Length-sorted training batches (every mixture once, padded audio within budget) and the wall-time limit."""

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from asr_sactc.config import load_config
from asr_sactc.data import LengthBatchSampler
from asr_sactc.settings import SERVICE_DIR
from asr_sactc.train import train


def test_batches_cover_every_mixture_once_within_the_padded_budget() -> None:
    durations = [float(d) for d in torch.linspace(1.0, 9.0, 37)]
    sampler = LengthBatchSampler(durations, batch_seconds=20.0, generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(37))
    assert all(len(b) * max(durations[i] for i in b) <= 20.0 for b in batches)
    assert len(batches) == len(sampler)
    # Sorted packing: the short mixtures come in larger batches than the long ones.
    assert len(sampler.batches[0]) > len(sampler.batches[-1])


def test_a_mixture_longer_than_the_budget_gets_a_batch_of_its_own_and_epochs_reshuffle() -> None:
    sampler = LengthBatchSampler([1.0, 2.0, 30.0, 1.5], batch_seconds=5.0, generator=torch.Generator())
    assert sorted(map(sorted, sampler.batches)) == [[0, 3], [1], [2]]
    sampler.generator.manual_seed(1)
    orders = {tuple(map(tuple, sampler)) for _ in range(10)}
    assert len(orders) > 1


def test_training_with_sorted_batches_stops_at_the_wall_time_budget(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for i, seconds in enumerate([0.8, 1.0, 1.2, 1.4]):
        sf.write(tmp_path / f"m{i}.wav", 0.1 * rng.standard_normal(int(seconds * 16000)), 16000)
        lines.append(
            json.dumps({"id": f"m{i}", "audio": f"m{i}.wav", "texts": ["AB", "CD"], "delays": [0, 0.2]})
        )
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    config = load_config(SERVICE_DIR / "configs" / "demo.yaml")
    config["train_conf"] |= {"batch_seconds": 2.5, "max_epoch": 3}
    train(config, tmp_path, tmp_path / "exp", "cpu", max_steps=None, seed=0, max_minutes=0.0)
    log = [json.loads(line) for line in (tmp_path / "exp" / "train.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1]
    assert (tmp_path / "exp" / "last.pth").is_file()
