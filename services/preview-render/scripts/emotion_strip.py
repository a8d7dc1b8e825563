"""The preview's frame strip in the docs: one sentence spoken by an offline voice, driven through face-vqvae's
demo checkpoint as neutral, happy and angry (intensity 2, argmin decoding), rendered in compare mode.

Usage: .venv/bin/python services/preview-render/scripts/emotion_strip.py [--out FILE]
(default docs/images/preview-emotions.png).
Writes the strip (one row per emotion, labelled by the compare video itself; one column per frame, evenly
spaced from 15 % to 85 % of the clip), the compare mp4 (--video)
and prints each emotion's mean mouthSmile and browDown, the motion the strip should make visible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from orate.v1 import common_pb2, models_pb2
from PIL import Image

from shared.media import encode_wav
from shared.render.preview import frame_count
from shared.render.video import read_video
from shared.rigs.arkit import ARKIT_INDEX
from shared.voices import synthesize

ROOT = Path(__file__).resolve().parents[3]
EMOTIONS = ("neutral", "happy", "angry")
TEXT = "I did not expect to see you here today, of all days."


def face_motion(wav: bytes, emotions: tuple[str, ...]) -> list[np.ndarray]:
    from face_vqvae.predictor import FaceVqvaePredictor

    predictor = FaceVqvaePredictor(checkpoint="demo", num_threads=1)
    predictor.load()
    requests = [
        models_pb2.FaceVqvaeRequest(
            audio=common_pb2.Audio(data=wav), identity="flite-slt", emotion=e, intensity=2, temperature=0
        )
        for e in emotions
    ]
    clips = []
    for response in predictor.predict(requests):
        motion = response.samples[0]
        clips.append(np.frombuffer(motion.data_f32, "<f4").reshape(motion.frames, motion.dims))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "preview-emotions.png")
    parser.add_argument("--video", type=Path, default=Path("/tmp/preview-emotions.mp4"))
    parser.add_argument("--columns", type=int, default=5, help="frames per row")
    parser.add_argument("--thumb", type=int, default=256, help="pixels per frame in the strip")
    args = parser.parse_args()
    speech = synthesize(TEXT, "flite:slt")
    wav = encode_wav(speech.waveform, speech.sample_rate)
    clips = face_motion(wav, EMOTIONS)
    for emotion, curves in zip(EMOTIONS, clips, strict=True):
        smile = curves[:, [ARKIT_INDEX["mouthSmileLeft"], ARKIT_INDEX["mouthSmileRight"]]].mean()
        brow = curves[:, [ARKIT_INDEX["browDownLeft"], ARKIT_INDEX["browDownRight"]]].mean()
        print(f"{emotion:8s} mean mouthSmile {smile:.2f}  browDown {brow:.2f}")
    from preview_render.predictor import PreviewRenderPredictor

    predictor = PreviewRenderPredictor()
    predictor.load()
    motions = [
        common_pb2.Motion(
            layout="arkit-52", fps=25, frames=len(c), dims=52, data_f32=c.astype("<f4").tobytes()
        )
        for c in clips
    ]
    request = models_pb2.PreviewRenderRequest(
        motion=motions[0], compare=motions[1:], labels=list(EMOTIONS), audio=common_pb2.Audio(data=wav)
    )
    predictor.check(request)
    (response,) = predictor.predict([request])
    args.video.write_bytes(response.video.data)
    video = read_video(response.video.data).frames  # [T, 512, 3 * 512, 3]
    count = frame_count(len(speech.waveform) / speech.sample_rate, 25)
    picks = np.linspace(0.15 * count, 0.85 * count, args.columns).round().astype(int)
    panel = video.shape[1]
    rows = []
    for i in range(len(EMOTIONS)):
        cells = []
        for t in picks:
            frame = video[t, :, i * panel : (i + 1) * panel]
            cells.append(np.asarray(Image.fromarray(frame).resize((args.thumb, args.thumb), Image.LANCZOS)))
        rows.append(np.concatenate(cells, axis=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out, optimize=True)
    print(f"wrote {args.out} (frames {', '.join(f'{t / 25:.1f}' for t in picks)} s) and {args.video}")


if __name__ == "__main__":
    main()
