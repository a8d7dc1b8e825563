"""3DMEAD-style dataset: `param/*.npy` motion at 25 fps + `wav/*.wav` speech, style from the file name.

File stems are `{identity}_{sentence}_{emotion}_{intensity}` (upstream `process_animation.py`), e.g.
`M003_012_3_2`; emotion may be its index or its name. A motion file is either upstream's FLAME parameter
dump [1, T, 403] or [T, 403] (300 shape, 100 expression, 3 jaw; the first 50 expression values and the jaw
are used) or already in the layout, [T, dims] in rig units (ARKit weights in [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from face_vqvae._audio import load_speech
from face_vqvae.config import FaceVqvaeConfig
from face_vqvae.layouts import LAYOUTS, MotionLayout

# Upstream stage-2 sentence split, per identity: (neutral sentences, emotional sentences), 1-based inclusive.
SENTENCE_SPLITS: dict[str, tuple[range, range]] = {
    "train": (range(1, 33), range(1, 25)),
    "val": (range(33, 37), range(25, 28)),
    "test": (range(37, 41), range(28, 31)),
}


@dataclass(frozen=True)
class MeadItem:
    key: str
    identity: str
    sentence: int
    emotion: str
    intensity: int
    motion_path: Path
    wav_path: Path | None


def parse_key(stem: str, emotions: list[str]) -> tuple[str, int, str, int]:
    """`M003_012_3_2` -> ('M003', 12, emotions[3], 2); ValueError on any other shape."""
    parts = stem.split("_")
    if len(parts) != 4:
        raise ValueError(f"{stem}: expected identity_sentence_emotion_intensity")
    identity, sentence, emotion, intensity = parts
    emotion_name = emotions[int(emotion)] if emotion.isdigit() else emotion
    if emotion_name not in emotions:
        raise ValueError(f"{stem}: unknown emotion {emotion!r}")
    return identity, int(sentence), emotion_name, int(intensity)


def load_motion(path: Path, layout: MotionLayout) -> torch.Tensor:
    """Motion [T, dims] in model space (float32)."""
    array = np.load(path)
    array = array.reshape(-1, array.shape[-1])
    if array.shape[-1] == 403 and layout.name == "flame-53":
        array = np.concatenate([array[:, 300:350], array[:, 400:403]], axis=1)
    if array.shape[-1] != layout.dims:
        raise ValueError(
            f"{path}: {array.shape[-1]} channels per frame, layout {layout.name} has {layout.dims}"
        )
    return torch.from_numpy(np.asarray(layout.to_model(array.astype(np.float32)), dtype=np.float32))


class MeadDataset(torch.utils.data.Dataset):
    """The items of the given identities: all their sentences, or one split (`sentences`, a SENTENCE_SPLITS
    key) of the per-identity sentence split. With `need_audio` (stage 2) items without a wav are left out.

    `rule` says in words which items were asked for (for error messages).
    """

    def __init__(
        self,
        root: str | Path,
        layout: MotionLayout,
        *,
        identities: list[str],
        emotions: list[str],
        sentences: str | None,
        need_audio: bool,
        sample_rate: int = 16000,
    ) -> None:
        root = Path(root)
        self.layout = layout
        self.need_audio = need_audio
        self.sample_rate = sample_rate
        self.rule = f"identities {', '.join(identities)}: " + (
            "all sentences" if sentences is None else _describe_sentences(sentences)
        )
        self.items: list[MeadItem] = []
        for motion_path in sorted((root / "param").glob("*.npy")):
            identity, sentence, emotion, intensity = parse_key(motion_path.stem, emotions)
            wav = root / "wav" / f"{motion_path.stem}.wav"
            if identity not in identities or (need_audio and not wav.exists()):
                continue
            if sentences is not None:
                neutral, emotional = SENTENCE_SPLITS[sentences]
                if sentence not in (neutral if emotion == emotions[0] else emotional):
                    continue
            self.items.append(
                MeadItem(
                    motion_path.stem,
                    identity,
                    sentence,
                    emotion,
                    intensity,
                    motion_path,
                    wav if wav.exists() else None,
                )
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        """{'item': MeadItem, 'motion': [T, D] model space, 'wave': [N] at 16 kHz, or None in stage 1}."""
        item = self.items[index]
        wave = None
        if self.need_audio and item.wav_path is not None:
            wave = torch.from_numpy(load_speech(item.wav_path, self.sample_rate))
        return {"item": item, "motion": load_motion(item.motion_path, self.layout), "wave": wave}


def _describe_sentences(split: str) -> str:
    neutral, emotional = SENTENCE_SPLITS[split]
    return f"sentences {neutral[0]}-{neutral[-1]} (neutral) and {emotional[0]}-{emotional[-1]} (emotional)"


def stage_dataset(root: str | Path, config: FaceVqvaeConfig, stage: int, split: str) -> MeadDataset:
    """A split as each stage takes it upstream.

    Stage 1 learns motion alone. With upstream's stage-1 split files (`identities/{split}`) it takes every
    sentence of the listed speakers, so it validates on unseen speakers, who need not be in the style
    vocabulary. Stage 2 and evaluation (upstream's `mead-splits-pred`) take the style vocabulary's speakers
    and the per-identity sentence split; so does stage 1 on data without split files.
    """
    split_file = Path(root) / "identities" / split
    listed = split_file.read_text().split() if stage == 1 and split_file.exists() else None
    return MeadDataset(
        root,
        LAYOUTS[config.layout],
        identities=config.style.identities if listed is None else listed,
        emotions=config.style.emotions,
        sentences=split if listed is None else None,
        need_audio=stage == 2,
        sample_rate=config.sample_rate,
    )
