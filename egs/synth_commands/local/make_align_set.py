#!/usr/bin/env python3
"""``test_align``: test voices speaking commands whose word boundaries are known. Each word is
synthesised on its own (same voice, rate and pitch), its leading and trailing silence trimmed, and
the words are joined with pauses of 50-300 ms; ``ref.ctm`` records where each word starts and ends.
"""
from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grammar  # noqa: E402
from make_corpus import split_voices, synthesise  # noqa: E402

from speechtext.audio import SAMPLE_RATE, AudioSpec  # noqa: E402
from speechtext.data import Utterance, write_data_dir  # noqa: E402


def trim(samples: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Drop leading and trailing samples quieter than ``threshold`` of the peak (10 ms frames)."""
    frames = len(samples) // 160
    energy = np.abs(samples[: frames * 160]).reshape(frames, 160).max(axis=1)
    loud = np.nonzero(energy > threshold * energy.max())[0]
    return samples[loud[0] * 160:(loud[-1] + 1) * 160] if len(loud) else samples


def make_utterance(index: int, voice: str, rng: random.Random, wav_dir: str):
    text, intent, _ = grammar.sample(rng, False)
    rate, pitch = rng.randint(130, 230), rng.randint(20, 80)
    utt = f"{voice.replace('+', '_')}-align{index:04d}"
    pieces, rows, clock = [], [], rng.uniform(0.1, 0.3)
    pieces.append(np.zeros(int(clock * SAMPLE_RATE), dtype=np.float32))
    for n, word in enumerate(text.split()):
        part = os.path.join(wav_dir, "words", f"{utt}-{n}.wav")
        if synthesise((part, "espeak", voice, word, rate, pitch)) is None:
            return None
        samples = trim(sf.read(part, dtype="float32")[0])
        rows.append(f"{utt} 1 {clock:.3f} {len(samples) / SAMPLE_RATE:.3f} {word}")
        gap = rng.uniform(0.05, 0.3)
        pieces += [samples, np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)]
        clock += len(samples) / SAMPLE_RATE + gap
    path = os.path.join(wav_dir, f"{utt}.wav")
    joined = np.concatenate(pieces)
    sf.write(path, joined, SAMPLE_RATE, subtype="PCM_16")
    return Utterance(utt, AudioSpec(path), text, voice.replace("+", "_"), intent, round(len(joined) / SAMPLE_RATE, 3)), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data/test_align")
    parser.add_argument("--wav-dir", default="wav/test_align")
    parser.add_argument("--num", type=int, default=100)
    parser.add_argument("--dev-voices", type=int, default=20)
    parser.add_argument("--test-voices", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    voices = split_voices(args.seed, args.dev_voices, args.test_voices)["test"]
    rng = random.Random(f"{args.seed}-align")
    os.makedirs(os.path.join(args.wav_dir, "words"), exist_ok=True)
    utts, ctm = [], []
    for index in range(args.num):
        made = make_utterance(index, voices[index % len(voices)], rng, os.path.abspath(args.wav_dir))
        if made:
            utts.append(made[0])
            ctm += made[1]
    write_data_dir(args.data_dir, utts)
    with open(os.path.join(args.data_dir, "ref.ctm"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(ctm) + "\n")
    print(f"test_align: {len(utts)} utterances, {len(ctm)} words with known boundaries")


if __name__ == "__main__":
    main()
