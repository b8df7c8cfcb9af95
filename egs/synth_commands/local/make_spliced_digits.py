#!/usr/bin/env python3
"""Training speech for the way ``test_real_digits`` is spoken, from the *training* voices only: each
digit word synthesised on its own per voice (espeak-ng voices of the training set with drawn rate and
pitch, Festival's kdl and Piper's joe with drawn prosody), 3-6 of them joined with 100-300 ms pauses
exactly as ``make_real_digits.py`` joins the real speaker's recordings, a share passed through an
8 kHz band. The real speaker is never used. Part of the recipe's training data since the log-mel
front end (``local/data.sh --spliced 600``: data/train_synth + data/train_spliced; README "Real voices").

    python3 local/make_spliced_digits.py --num 600
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile

import soxr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grammar import DIGITS  # noqa: E402
from make_align_set import trim  # noqa: E402
from make_corpus import Job, draw_prosody, festival_batch, synthesise  # noqa: E402
from make_real_digits import splice, write_peak_normalised  # noqa: E402

from speechtext.audio import SAMPLE_RATE, AudioSpec, load_audio  # noqa: E402
from speechtext.data import Utterance, read_data_dir, write_data_dir  # noqa: E402


def digit_banks(train_dir: str, espeak_voices: int, other_draws: int, rng: random.Random, tmp: str) -> dict:
    """``{bank name: [ten trimmed 16 kHz recordings]}``: one bank per voice and prosody draw."""
    speakers = sorted({u.speaker for u in read_data_dir(train_dir)})
    espeak = sorted(s for s in speakers if s.startswith("en"))
    voices = [("espeak", s.replace("_", "+", 1), s) for s in rng.sample(espeak, min(espeak_voices, len(espeak)))]
    voices += [("festival", "kdl", f"festival_kdl{k}") for k in range(other_draws) if "festival_kdl" in speakers]
    voices += [("piper", "joe", f"piper_joe{k}") for k in range(other_draws) if "piper_joe" in speakers]
    jobs = {name: [Job(os.path.join(tmp, f"{name}-{d}.wav"), engine, voice, word, *prosody)
                   for d, word in enumerate(DIGITS)]
            for engine, voice, name in voices for prosody in [draw_prosody(engine, rng)]}
    for name, bank in jobs.items():
        if bank[0].engine == "festival":
            festival_batch(bank)  # one Festival process per bank: its start-up costs more than a word
            continue
        for job in bank:
            synthesise(job)
    return {name: [trim(load_audio(job.path), threshold=0.01) for job in bank] for name, bank in jobs.items()
            if all(os.path.exists(job.path) for job in bank)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-dir", default="data/train", help="whose voices to use")
    parser.add_argument("--data-dir", default="data/train_spliced")
    parser.add_argument("--wav-dir", default="wav/train_spliced")
    parser.add_argument("--num", type=int, default=600)
    parser.add_argument("--espeak-voices", type=int, default=80)
    parser.add_argument("--other-draws", type=int, default=6, help="prosody draws of Festival kdl and Piper joe")
    parser.add_argument("--telephone", type=float, default=0.5, help="share passed through an 8 kHz band")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(f"{args.seed}-spliced-digits")
    wav_dir = os.path.abspath(args.wav_dir)
    os.makedirs(wav_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        banks = digit_banks(args.train_dir, args.espeak_voices, args.other_draws, rng, tmp)
    names, utts = sorted(banks), []
    for index in range(args.num):
        name = rng.choice(names)
        picked, joined = splice(banks[name], rng)
        if rng.random() < args.telephone:
            joined = soxr.resample(soxr.resample(joined, SAMPLE_RATE, 8000, "HQ"), 8000, SAMPLE_RATE, "HQ")
        utt = f"{name}-spliced{index:05d}"
        path = os.path.join(wav_dir, f"{utt}.wav")
        write_peak_normalised(path, joined)
        text = " ".join(DIGITS[d] for d in picked)
        utts.append(Utterance(utt, AudioSpec(path), text, name, "digits_plain", round(len(joined) / SAMPLE_RATE, 3)))
    write_data_dir(args.data_dir, sorted(utts, key=lambda u: u.utt_id))
    print(f"{args.data_dir}: {len(utts)} spliced digit strings from {len(names)} voice/prosody banks, "
          f"{sum(u.duration for u in utts) / 60:.1f} min")


if __name__ == "__main__":
    main()
