#!/usr/bin/env python3
"""``test_real_digits``: a real human voice. Digit strings (3-6 digits, the grammar's plain digits
family) spliced from the recordings of one US English speaker in Debian's asterisk-core-sounds-en-wav
(``digits/0.wav`` ... ``9.wav``, 8 kHz): each digit's leading and trailing silence trimmed, digits
joined with 100-300 ms pauses, resampled to 16 kHz. Fixed seed; ``text`` and ``utt2intent`` as in
the synthetic sets (intent ``digits_plain``).
"""
from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grammar import DIGITS  # noqa: E402
from make_align_set import trim  # noqa: E402

from speechtext.audio import SAMPLE_RATE, AudioSpec, load_audio  # noqa: E402
from speechtext.data import Utterance, write_data_dir  # noqa: E402

SOUNDS = "/usr/share/asterisk/sounds/en_US_f_Allison/digits"
INSTALL = "apt-get install -y asterisk-core-sounds-en-wav"


def read_digits(sounds: str) -> list[np.ndarray]:
    """The ten digit recordings at 16 kHz (``load_audio`` resamples the 8 kHz originals), trimmed."""
    paths = [os.path.join(sounds, f"{d}.wav") for d in range(10)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        sys.exit(f"make_real_digits: {missing[0]} is missing (the real-speech test set needs Debian's "
                 f"asterisk-core-sounds-en-wav); run tools/setup.sh or: {INSTALL}")
    # 1 % of the peak: the quiet onsets of "five", "six" and "seven" are speech, not silence.
    return [trim(load_audio(p), threshold=0.01) for p in paths]


def splice(digits: list[np.ndarray], rng: random.Random) -> tuple[list[int], np.ndarray]:
    """3-6 random digits, their recordings joined with 100-300 ms pauses (150-300 ms at the ends)."""
    picked = [rng.randrange(10) for _ in range(rng.randint(3, 6))]
    silence = lambda low, high: np.zeros(int(rng.uniform(low, high) * SAMPLE_RATE), dtype=np.float32)  # noqa: E731
    pieces = [silence(0.15, 0.3)]
    for n, d in enumerate(picked):
        pieces += [digits[d], silence(0.1, 0.3) if n < len(picked) - 1 else silence(0.15, 0.3)]
    return picked, np.concatenate(pieces)


def write_peak_normalised(path: str, samples: np.ndarray) -> None:
    """16-bit 16 kHz wav of ``samples`` scaled to a 0.9 peak (silence is left near silent)."""
    sf.write(path, samples / max(1e-3, float(np.abs(samples).max())) * 0.9, SAMPLE_RATE, subtype="PCM_16")


def make_utterance(index: int, digits: list[np.ndarray], rng: random.Random, wav_dir: str) -> Utterance:
    picked, joined = splice(digits, rng)
    utt = f"allison-real{index:04d}"
    path = os.path.join(wav_dir, f"{utt}.wav")
    write_peak_normalised(path, joined)
    text = " ".join(DIGITS[d] for d in picked)
    return Utterance(utt, AudioSpec(path), text, "allison", "digits_plain", round(len(joined) / SAMPLE_RATE, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data/test_real_digits")
    parser.add_argument("--wav-dir", default="wav/test_real_digits")
    parser.add_argument("--sounds", default=SOUNDS, help="folder with the speaker's 0.wav ... 9.wav")
    parser.add_argument("--num", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    digits = read_digits(args.sounds)
    os.makedirs(args.wav_dir, exist_ok=True)
    rng = random.Random(f"{args.seed}-real-digits")
    utts = [make_utterance(i, digits, rng, os.path.abspath(args.wav_dir)) for i in range(args.num)]
    write_data_dir(args.data_dir, utts)
    print(f"test_real_digits: {len(utts)} utterances of real speech (one speaker), "
          f"{sum(u.duration for u in utts) / 60:.1f} min")


if __name__ == "__main__":
    main()
