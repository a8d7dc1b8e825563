"""FastTalker's causal gesture decoder: shared rhythmic features -> 30 fps body, hands, face and root motion.

The input is the TTS branch's own intermediate features per mel frame (regulated phoneme states carrying the
pitch and energy embeddings, plus pitch, energy, onset probability, log-duration and position inside the
phoneme), never features re-extracted from generated audio. They are projected, pooled causally to 30 fps
(frame_rates.pool_to_motion), joined by a speaker embedding and an optional seed pose (EMAGE's 4 seed
frames), and run through causal FFT blocks (causal attention mask, left-padded convolutions). Heads: rot6d
pose, expression (a sigmoid for ARKit weights), root translation and foot-contact logits. Module sizes are
choices (the paper's searched architecture is not public); every one is in `GestureDecoderConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from shared.rigs.rotations import rot6d_to_matrix
from tts_gesture.config import GestureDecoderConfig
from tts_gesture.layouts import FOOT_CONTACTS, TRANSLATION, MotionLayout
from tts_gesture.model.fft_block import FFTBlock
from tts_gesture.model.frame_rates import pool_to_motion
from tts_gesture.model.padding import causal_attention_mask
from tts_gesture.model.transformer import sinusoid_table

RHYTHM_SCALARS = 5  # pitch, energy, onset, log-duration, progress (FrameFeatures.rhythm)


@dataclass
class Gesture:
    """Motion at 30 fps: pose [B, Tm, J*6] (rot6d, rows of each rotation), expression [B, Tm, E],
    translation [B, Tm, 3] (metres), foot_contact [B, Tm, 4] (logits), lengths [B]."""

    pose: torch.Tensor
    expression: torch.Tensor
    translation: torch.Tensor
    foot_contact: torch.Tensor
    lengths: torch.Tensor

    def rotations(self) -> torch.Tensor:
        """[B, Tm, J, 3, 3] rotation matrices (Gram-Schmidt on each joint's 6 numbers)."""
        b, t, _ = self.pose.shape
        return rot6d_to_matrix(self.pose.view(b, t, -1, 6))


class GestureDecoder(nn.Module):
    def __init__(
        self,
        tts_hidden: int,
        n_speakers: int,
        layout: MotionLayout,
        config: GestureDecoderConfig,
        conv_kernel_size: tuple[int, int],
        frame_rate: float,
    ) -> None:
        super().__init__()
        d = config.hidden_size
        self.layout = layout
        self.frame_rate = frame_rate
        self.seed_frames = config.seed_frames
        self.rhythm_projection = nn.Linear(tts_hidden + RHYTHM_SCALARS, d)
        self.speaker_embedding = nn.Embedding(n_speakers, d)
        self.seed_projection = nn.Linear(layout.motion_dims + 1, d)  # seed motion ⊕ "is seed" flag
        self.layer_stack = nn.ModuleList(
            FFTBlock(d, config.num_heads, config.ffn_size, conv_kernel_size, config.dropout, causal=True)
            for _ in range(config.num_layers)
        )
        self.pose_head = nn.Linear(d, layout.pose_dims)
        self.expression_head = nn.Linear(d, layout.expression_dims)
        self.translation_head = nn.Linear(d, TRANSLATION)
        self.foot_contact_head = nn.Linear(d, FOOT_CONTACTS)

    def forward(
        self,
        rhythm: torch.Tensor,
        mel_lens: torch.Tensor,
        speakers: torch.Tensor,
        seed: torch.Tensor | None = None,
    ) -> Gesture:
        """rhythm [B, T, H + 5] at the mel rate, mel_lens [B], speakers [B] ids, seed [B, S, motion_dims]
        (S <= seed_frames first frames of motion, or None: no seed) -> Gesture."""
        pooled, lengths = pool_to_motion(self.rhythm_projection(rhythm), mel_lens, self.frame_rate)
        b, t, _ = pooled.shape
        x = pooled + self.speaker_embedding(speakers).unsqueeze(1) + self._seed(seed, b, t, pooled)
        x = x + sinusoid_table(t, x.shape[2]).to(x)
        pad = torch.arange(t, device=x.device).unsqueeze(0) >= lengths.unsqueeze(1)
        attn_mask = causal_attention_mask(t, x.device).unsqueeze(0)
        for layer in self.layer_stack:
            x = layer(x, pad, attn_mask)
        expression = self.expression_head(x)
        return Gesture(
            pose=self.pose_head(x),
            expression=expression.sigmoid() if self.layout.bounded_expression else expression,
            translation=self.translation_head(x),
            foot_contact=self.foot_contact_head(x),
            lengths=lengths,
        )

    def _seed(self, seed: torch.Tensor | None, b: int, t: int, like: torch.Tensor) -> torch.Tensor:
        """[B, Tm, d]: the projected seed motion on its frames, the projected "no seed" elsewhere."""
        channels = torch.zeros(b, t, self.layout.motion_dims + 1, device=like.device, dtype=like.dtype)
        if seed is not None:
            frames = min(seed.shape[1], self.seed_frames, t)
            channels[:, :frames, :-1] = seed[:, :frames]
            channels[:, :frames, -1] = 1.0
        return self.seed_projection(channels)
