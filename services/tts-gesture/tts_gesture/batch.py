"""A padded training batch: text, speech targets at the mel rate and motion targets at 30 fps."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Batch:
    """speakers [B]; texts [B, L] phoneme ids (0 = padding), src_lens [B]; per phoneme: durations [B, L]
    (mel frames), pitches and energies [B, L] (normalised); per mel frame: mels [B, T, M] (log), onsets
    [B, T] in {0, 1}, mel_lens [B] (= durations summed); per 30 fps frame: pose [B, Tm, J*6] (rot6d),
    expression [B, Tm, E], translation [B, Tm, 3], foot_contact [B, Tm, 4] in {0, 1}, motion_lens [B]
    (= frame_rates.motion_frames(mel_lens))."""

    speakers: torch.Tensor
    texts: torch.Tensor
    src_lens: torch.Tensor
    durations: torch.Tensor
    pitches: torch.Tensor
    energies: torch.Tensor
    mels: torch.Tensor
    onsets: torch.Tensor
    mel_lens: torch.Tensor
    pose: torch.Tensor
    expression: torch.Tensor
    translation: torch.Tensor
    foot_contact: torch.Tensor
    motion_lens: torch.Tensor

    def motion(self) -> torch.Tensor:
        """[B, Tm, motion_dims]: pose ⊕ expression ⊕ translation (the seed-pose layout)."""
        return torch.cat([self.pose, self.expression, self.translation], dim=-1)

    def to(self, device: str | torch.device) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})
