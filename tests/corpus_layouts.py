"""Miniature copies of public corpora: a few espeak-ng utterances named, nested and formatted exactly as
in the real corpus (file names, folders, transcript and CSV formats, split lists, sample rates)."""
from __future__ import annotations

import os

import librosa
import numpy as np
import soundfile as sf

from conftest import SENTENCES, espeak

WORDS = ["yes", "no", "left", "marvin"]


def speech(root, text: str, rel: str, rate: int = 16000, voice: str = "en-us") -> str:
    """espeak-ng speech of ``text`` written to ``root/rel`` at ``rate`` (format from the extension)."""
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".16k.wav"
    espeak(text, tmp, voice)
    samples, _ = sf.read(tmp, dtype="float32")
    os.remove(tmp)
    if rate != 16000:
        samples = librosa.resample(samples, orig_sr=16000, target_sr=rate)
    sf.write(path, samples, rate, subtype="PCM_16")
    return path


def make_librispeech(root, subsets=("train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other")) -> None:
    """``<root>/<subset>/<spk>/<chapter>/<spk>-<chapter>-<n>.flac`` + ``<spk>-<chapter>.trans.txt``."""
    for s, subset in enumerate(subsets):
        for speaker, chapter in ((f"{100 + s}", "1000"), (f"{200 + s}", "2000")):
            folder = os.path.join(str(root), subset, speaker, chapter)
            lines = []
            for n in range(3 if subset.startswith("train") else 1):
                utt = f"{speaker}-{chapter}-{n:04d}"
                text = SENTENCES[(n + s) % len(SENTENCES)].upper()
                speech(folder, text, f"{utt}.flac")
                lines.append(f"{utt} {text}\n")
            with open(os.path.join(folder, f"{speaker}-{chapter}.trans.txt"), "w") as handle:
                handle.writelines(lines)


def make_ljspeech(root, n: int = 12) -> None:
    """``<root>/metadata.csv`` (``id|raw|normalised``) and ``<root>/wavs/<id>.wav`` at 22.05 kHz."""
    rows = []
    for k in range(n):
        utt = f"LJ001-{k + 1:04d}"
        text = SENTENCES[k % len(SENTENCES)]
        speech(root, text, f"wavs/{utt}.wav", rate=22050)
        rows.append(f'{utt}|"{text.capitalize()}," he said: 2 times|{text.capitalize()}, he said: two times\n')
    with open(os.path.join(str(root), "metadata.csv"), "w") as handle:
        handle.writelines(rows)


def make_vctk(root) -> None:
    """VCTK 0.92: ``wav48_silence_trimmed/<spk>/<spk>_<n>_mic1.flac`` (and mic2), ``txt/<spk>/<spk>_<n>.txt``;
    p225 is a held-out test speaker, p315 has no transcripts (as in the real corpus)."""
    voices = {"p225": "en-gb+f3", "p226": "en-us", "p227": "en-gb-scotland+m2", "p315": "en-us+klatt"}
    for speaker, voice in voices.items():
        for n in range(1, 5):
            stem = f"{speaker}_{n:03d}"
            text = SENTENCES[(n + len(speaker)) % len(SENTENCES)].capitalize() + "."
            for mic in ("mic1", "mic2"):
                speech(root, text, f"wav48_silence_trimmed/{speaker}/{stem}_{mic}.flac", rate=48000, voice=voice)
            if speaker != "p315":
                os.makedirs(os.path.join(str(root), "txt", speaker), exist_ok=True)
                with open(os.path.join(str(root), "txt", speaker, f"{stem}.txt"), "w") as handle:
                    handle.write(text + "\n")


def make_speech_commands(root) -> None:
    """``<root>/<word>/<speaker>_nohash_<n>.wav``, ``validation_list.txt``, ``testing_list.txt`` and
    ``_background_noise_/*.wav``."""
    valid, test = [], []
    for w, word in enumerate(WORDS):
        for s, speaker in enumerate(("0a7c2a8d", "0b09edd3", "0c40e715", "0d2bcf9d")):
            rel = f"{word}/{speaker}_nohash_0.wav"
            speech(root, word, rel, voice=["en-us", "en-gb+f3", "en-us+klatt", "en-gb-scotland+m2"][s])
            (valid if s == 2 else test if s == 3 else []).append(rel)
    with open(os.path.join(str(root), "validation_list.txt"), "w") as handle:
        handle.write("".join(f"{r}\n" for r in valid))
    with open(os.path.join(str(root), "testing_list.txt"), "w") as handle:
        handle.write("".join(f"{r}\n" for r in test))
    os.makedirs(os.path.join(str(root), "_background_noise_"))
    rng = np.random.default_rng(0)
    for name in ("white_noise", "running_tap"):
        sf.write(os.path.join(str(root), "_background_noise_", f"{name}.wav"),
                 (0.05 * rng.standard_normal(16000 * 12)).astype(np.float32), 16000, subtype="PCM_16")


FSC_ROWS = [("Turn on the lights", "activate", "lights", "none"), ("Switch on the lights", "activate", "lights", "none"),
            ("Lights on", "activate", "lights", "none"), ("Stop the music", "deactivate", "music", "none"),
            ("Pause the music", "deactivate", "music", "none"), ("Music off", "deactivate", "music", "none"),
            ("Bring me my shoes", "bring", "shoes", "none"), ("Get me my shoes", "bring", "shoes", "none")]


def make_fsc(root) -> None:
    """``<root>/data/{train,valid,test}_data.csv`` (index, path, speakerId, transcription, action,
    object, location) and ``<root>/wavs/speakers/<speaker>/<id>.wav``."""
    header = ",path,speakerId,transcription,action,object,location\n"
    os.makedirs(os.path.join(str(root), "data"))
    splits = {"train": ["2BqVo8kVB2Skwgyb", "4BrX8aDqK2cLZRYl"], "valid": ["5o9BvRGEGvhaeBwA"], "test": ["73bEEYMKLwtmVwV43"]}
    for split, speakers in splits.items():
        lines = []
        for speaker in speakers:
            for k, (text, action, obj, location) in enumerate(FSC_ROWS):
                rel = f"wavs/speakers/{speaker}/{speaker[:4]}{k:02d}-{split}.wav"
                speech(root, text, rel, voice="en-gb+f3" if split == "test" else "en-us")
                lines.append(f"{len(lines)},{rel},{speaker},{text},{action},{obj},{location}\n")
        with open(os.path.join(str(root), "data", f"{split}_data.csv"), "w") as handle:
            handle.write(header + "".join(lines))
