"""FastTalker inference: text and a voice -> speech and 30 fps motion, phrase by phrase or whole.

The text is split into phrases at sentence and phrase punctuation. Each phrase is encoded and its durations,
pitch, energy and onsets predicted on its own (the encoder reads one phrase: FastTalker's streaming
granularity), then decoded causally and vocoded. A phrase after the first is decoded with the end of the
ones before it in front: the mel frames of about `seed_frames` motion frames, whose motion is the gesture
decoder's seed (EMAGE overlaps its `pre_frames` the same way). That lead-in's outputs are dropped, so each
phrase's mel, audio and motion continue from where the previous phrase ended instead of starting cold.
A whole utterance is its phrases laid end to end: streaming and whole synthesis give the same result.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tts_gesture.checkpoints import load_checkpoint
from tts_gesture.config import FastTalkerConfig, Speaker
from tts_gesture.layouts import FOOT_CONTACTS, LAYOUTS, TRANSLATION, MotionLayout
from tts_gesture.model import FastTalker, FrameFeatures
from tts_gesture.model.frame_rates import mel_frames, motion_frames
from tts_gesture.text import G2P, G2PError, phonemes
from tts_gesture.text.symbols import SYMBOL_TO_ID

MAX_CHARACTERS = 600
# A phrase ends after sentence or phrase punctuation: before the next word in Latin script, at once after
# CJK punctuation (written without spaces). A decimal point or thousands comma has no space after it.
_PHRASE_END = re.compile(r"(?<=[.!?;:,\u2014\u2026])\s+|(?<=[\u3001\u3002\uff01\uff0c\uff1a\uff1b\uff1f])")


class InputError(ValueError):
    """Input the synthesizer refuses; the message names the problem and what is allowed."""


class TextError(InputError):
    """Empty or too long text, or characters g2p cannot read (in `characters`)."""

    def __init__(self, message: str, characters: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.characters = list(characters)


class VoiceError(InputError):
    """An unknown voice, or a language no voice speaks."""


@dataclass
class Utterance:
    """Speech and motion of a phrase (a stream's chunk) or of a whole utterance.

    waveform [N] float32 in [-1, 1] at sample_rate. Motion at 30 fps: pose [T, J*6] (rot6d: the first two
    rows of each joint's rotation), expression [T, E] (FLAME coefficients or ARKit weights), translation
    [T, 3] (metres), foot_contact [T, 4] (probabilities). phonemes and durations_s in speaking order;
    start_s is where this part starts in the utterance.
    """

    text: str
    sample_rate: int
    waveform: np.ndarray
    pose: np.ndarray
    expression: np.ndarray
    translation: np.ndarray
    foot_contact: np.ndarray
    phonemes: list[str]
    durations_s: np.ndarray
    start_s: float = 0.0

    @property
    def audio_s(self) -> float:
        return len(self.waveform) / self.sample_rate

    def phoneme_times(self) -> list[tuple[str, float, float]]:
        """(phoneme, start_s, end_s) from the start of the utterance."""
        ends = self.start_s + np.cumsum(self.durations_s)
        starts = ends - self.durations_s
        return list(zip(self.phonemes, starts.tolist(), ends.tolist(), strict=True))

    @classmethod
    def join(cls, parts: Sequence[Utterance]) -> Utterance:
        """Parts laid end to end (a stream's chunks -> the whole utterance)."""

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(
            text=" ".join(p.text for p in parts),
            sample_rate=parts[0].sample_rate,
            waveform=cat("waveform"),
            pose=cat("pose"),
            expression=cat("expression"),
            translation=cat("translation"),
            foot_contact=cat("foot_contact"),
            phonemes=[p for part in parts for p in part.phonemes],
            durations_s=cat("durations_s"),
            start_s=parts[0].start_s,
        )


@dataclass(frozen=True)
class Phrase:
    text: str
    phonemes: list[str]


@dataclass(frozen=True)
class Plan:
    """A checked request: the voice that speaks and the phrases it speaks."""

    speaker: int
    voice: Speaker
    phrases: list[Phrase]


@dataclass
class _Context:
    """Where the utterance stands between two phrases: the last frame features decoded (at most the
    lead-in's length), the last motion frames emitted ([1, T, motion_dims], the seed layout), the mel
    frames and seconds done."""

    features: FrameFeatures | None = None
    motion: torch.Tensor | None = None
    mel_done: int = 0
    start_s: float = 0.0


def split_phrases(text: str) -> list[str]:
    """Text -> phrases, each ending at its punctuation; blank pieces dropped."""
    return [piece.strip() for piece in _PHRASE_END.split(text) if piece.strip()]


class Synthesizer:
    """A loaded FastTalker and its config: checks requests and synthesises them (see the module doc)."""

    def __init__(
        self, model: FastTalker, config: FastTalkerConfig, max_characters: int = MAX_CHARACTERS
    ) -> None:
        self.model = model.eval()
        self.config = config
        self.max_characters = max_characters
        self.device = next(model.parameters()).device
        self.layout: MotionLayout = LAYOUTS[config.layout]
        self.seed_frames = config.gesture_decoder.seed_frames
        # The lead-in spans at least two motion frames: then a phrase's share of the motion grid always
        # fits in what the gesture decoder returns for lead-in + phrase (see _decode).
        self.lead_motion = max(self.seed_frames, 2)
        self.lead_in = mel_frames(self.lead_motion, config.audio.frame_rate)

    @classmethod
    def from_checkpoint(
        cls, folder: str | Path, device: str = "cpu", max_characters: int = MAX_CHARACTERS
    ) -> Synthesizer:
        model, config = load_checkpoint(folder, device)
        return cls(model, config, max_characters)

    @property
    def voices(self) -> list[Speaker]:
        """The voices this checkpoint speaks (name and language), in speaker-id order."""
        return list(self.config.speakers)

    @property
    def sample_rate(self) -> int:
        return self.config.audio.sampling_rate

    def plan(self, text: str, voice: str = "", language: str = "") -> Plan:
        """Check a request and split its text into phrases; raises TextError or VoiceError.

        voice: a voice's name; empty: the first voice of `language` (or of the checkpoint). language: empty
        for the voice's own; set, it must be the voice's.
        """
        speaker = self._speaker(voice, language)
        chosen = self.config.speakers[speaker]
        if not text.strip():
            raise TextError(f"text is empty: give 1 to {self.max_characters} characters to speak")
        if len(text) > self.max_characters:
            raise TextError(
                f"text is {len(text)} characters long; at most {self.max_characters} are allowed "
                "(split longer text into several requests)"
            )
        phrases: list[Phrase] = []
        unreadable: set[str] = set()
        for piece in split_phrases(text):
            try:
                phrases.append(Phrase(piece, phonemes(piece, chosen.language)))
            except G2PError as error:
                if error.characters:
                    unreadable.update(error.characters)
                elif phrases:  # punctuation only: it belongs to the phrase before it
                    phrases[-1] = Phrase(f"{phrases[-1].text} {piece}", phrases[-1].phonemes)
        if unreadable:
            shown = " ".join(repr(c) for c in sorted(unreadable))
            raise TextError(
                f"voice {chosen.name!r} ({chosen.language}) cannot read these characters: {shown}",
                sorted(unreadable),
            )
        if not phrases:
            raise TextError("text has nothing to speak (only punctuation or spaces)")
        return Plan(speaker, chosen, phrases)

    def stream(self, text: str, voice: str = "", seed: int = 0, language: str = "") -> Iterator[Utterance]:
        """Phrase by phrase, each computed only once the one before it has been taken. The request is
        checked now, before the first phrase (raises as plan() does).

        seed is part of the request contract but changes nothing yet: FastTalker's inference draws no
        random numbers (no sampling, dropout off), so every seed gives the same output."""
        return self.run(self.plan(text, voice, language))

    def synthesize(self, text: str, voice: str = "", seed: int = 0, language: str = "") -> Utterance:
        """The whole utterance: the stream's phrases laid end to end."""
        return Utterance.join(list(self.stream(text, voice, seed, language)))

    def run(self, plan: Plan) -> Iterator[Utterance]:
        """A checked plan's phrases, one at a time."""
        context = _Context()
        for phrase in plan.phrases:
            yield self._decode(phrase, plan.speaker, context)

    def _speaker(self, voice: str, language: str) -> int:
        speakers = self.config.speakers
        languages = sorted({s.language for s in speakers})
        if language and language not in languages:
            known = "" if language in G2P else f" (no g2p reads it; known: {', '.join(sorted(G2P))})"
            raise VoiceError(
                f"language {language!r} is not supported{known}; this service speaks {', '.join(languages)}"
            )
        if not voice:
            return next(i for i, s in enumerate(speakers) if not language or s.language == language)
        names = [s.name for s in speakers]
        if voice not in names:
            raise VoiceError(f"unknown voice {voice!r}; voices: {', '.join(names)}")
        speaker = names.index(voice)
        if language and speakers[speaker].language != language:
            raise VoiceError(
                f"voice {voice!r} speaks {speakers[speaker].language}, not {language}; voices of {language}: "
                + ", ".join(s.name for s in speakers if s.language == language)
            )
        return speaker

    # Each phrase is computed whole between two yields: inference mode is per thread, and a server may
    # resume the stream on another thread.
    @torch.inference_mode()
    def _decode(self, phrase: Phrase, speaker: int, context: _Context) -> Utterance:
        model, rate, hop = self.model, self.config.audio.frame_rate, self.config.audio.hop_size
        speakers = torch.tensor([speaker], device=self.device)
        ids = torch.tensor([[SYMBOL_TO_ID[p] for p in phrase.phonemes]], device=self.device)
        src_mask = torch.zeros_like(ids, dtype=torch.bool)
        x = model.encoder(ids, src_mask) + model.speaker_emb(speakers).unsqueeze(1)
        variance, features = model.variance_adaptor(x, src_mask)
        frames = int(features.mel_lens[0])
        # The phrase's share of the utterance's motion grid, so that motion and audio never drift apart.
        own = motion_frames(context.mel_done + frames, rate) - motion_frames(context.mel_done, rate)
        waveform = torch.zeros(0, device=self.device)
        motion = torch.zeros(1, 0, self.layout.motion_dims + FOOT_CONTACTS, device=self.device)
        if frames:  # untrained weights can give every phoneme 0 frames: then there is nothing to decode
            lead = 0 if context.features is None else int(context.features.mel_lens[0])
            joined = features if context.features is None else _concat(context.features, features)
            # The decoder returns `total` motion frames; the first `skip` stand for the lead-in, which
            # covers the last emitted frames: those are the seed.
            total = motion_frames(lead + frames, rate)
            skip = total - own
            seed = (
                context.motion[:, context.motion.shape[1] - skip :][:, : self.seed_frames] if skip else None
            )
            decoded = model.decode(joined, speakers, seed=seed)
            waveform = model.vocode(decoded.postnet_mel[:, : lead + frames])[0, lead * hop :]
            g = decoded.gesture
            motion = torch.cat([g.pose, g.expression, g.translation, g.foot_contact.sigmoid()], -1)
            motion = motion[:, skip:total]
            context.features = _tail(joined, self.lead_in)
            emitted = motion[..., : self.layout.motion_dims]
            if context.motion is not None:
                emitted = torch.cat([context.motion, emitted], 1)
            context.motion = emitted[:, -(self.lead_motion + 1) :]
        pose, expression, translation, foot_contact = (
            part[0].float().cpu().numpy()
            for part in motion.split(
                [self.layout.pose_dims, self.layout.expression_dims, TRANSLATION, FOOT_CONTACTS], -1
            )
        )
        utterance = Utterance(
            text=phrase.text,
            sample_rate=self.sample_rate,
            waveform=waveform.float().cpu().numpy(),
            pose=pose,
            expression=expression,
            translation=translation,
            foot_contact=foot_contact,
            phonemes=list(phrase.phonemes),
            durations_s=variance.duration[0].double().cpu().numpy() * hop / self.sample_rate,
            start_s=context.start_s,
        )
        context.mel_done += frames
        context.start_s += utterance.audio_s
        return utterance


def _concat(a: FrameFeatures, b: FrameFeatures) -> FrameFeatures:
    """Two single-item feature runs one after the other."""
    return FrameFeatures(
        hidden=torch.cat([a.hidden, b.hidden], 1),
        pitch=torch.cat([a.pitch, b.pitch], 1),
        energy=torch.cat([a.energy, b.energy], 1),
        log_duration=torch.cat([a.log_duration, b.log_duration], 1),
        progress=torch.cat([a.progress, b.progress], 1),
        mel_mask=torch.cat([a.mel_mask, b.mel_mask], 1),
        mel_lens=a.mel_lens + b.mel_lens,
    )


def _tail(f: FrameFeatures, frames: int) -> FrameFeatures:
    """The last `frames` frames of a single-item feature run (all of it when shorter)."""
    n = min(frames, int(f.mel_lens[0]))
    end = int(f.mel_lens[0])
    return FrameFeatures(
        hidden=f.hidden[:, end - n : end],
        pitch=f.pitch[:, end - n : end],
        energy=f.energy[:, end - n : end],
        log_duration=f.log_duration[:, end - n : end],
        progress=f.progress[:, end - n : end],
        mel_mask=f.mel_mask[:, end - n : end],
        mel_lens=torch.full_like(f.mel_lens, n),
    )
