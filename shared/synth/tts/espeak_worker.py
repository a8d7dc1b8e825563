"""Speak one utterance with a fresh libespeak-ng and print its phone and word events (run as a child process).

libespeak-ng carries synthesiser state from one call to the next, so the same text comes out different
within one process; a fresh process per utterance is what makes espeak output reproducible.
Usage: python espeak_worker.py VOICE OUT.wav < text; prints {"rate": ..., "events": [...]} as JSON.
Standard library only, so it starts fast with `python -I`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
import wave

# From speak_lib.h.
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
POS_CHARACTER = 1
CHARS_UTF8 = 1
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_PHONEME = 0, 1, 7


class EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", EventId),
    ]


Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))


def main() -> int:
    voice, out_path = sys.argv[1], sys.argv[2]
    text = sys.stdin.buffer.read()
    path = ctypes.util.find_library("espeak-ng")
    if path is None:
        print("libespeak-ng is not installed", file=sys.stderr)
        return 2
    lib = ctypes.CDLL(path)
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    pcm = bytearray()
    events: list[list[int | str]] = []

    def collect(wav: ctypes._Pointer, count: int, items: ctypes._Pointer) -> int:
        if count > 0:
            pcm.extend(ctypes.string_at(wav, count * 2))
        i = 0
        while items[i].type != EVENT_LIST_TERMINATED:
            e = items[i]
            if e.type in (EVENT_WORD, EVENT_PHONEME):
                label = e.id.string.decode("utf-8", "ignore") if e.type == EVENT_PHONEME else ""
                events.append([e.type, e.sample, e.text_position, e.length, label])
            i += 1
        return 0

    callback = Callback(collect)
    rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA
    )
    if rate <= 0:
        print("libespeak-ng failed to initialise", file=sys.stderr)
        return 2
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        print(f"espeak-ng has no voice {voice!r}", file=sys.stderr)
        return 3
    status = lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    if status != 0:
        print(f"espeak_Synth failed with status {status}", file=sys.stderr)
        return 4
    with wave.open(out_path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(pcm))
    json.dump({"rate": rate, "events": events}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
