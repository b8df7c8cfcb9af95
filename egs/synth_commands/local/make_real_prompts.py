#!/usr/bin/env python3
"""``train_real``: real human speech for training. The voice prompts of Debian's
asterisk-core-sounds-en-wav (one US English speaker, 8 kHz), with their transcripts from
``core-sounds-en.txt.gz``, resampled to 16 kHz and trimmed.

The same speaker's digit recordings make ``test_real_digits``, so no digit is ever heard from her in
training: the ``digits/`` folder is left out, and so is every prompt whose transcript has a digit
word or a numeral. Also left out: non-speech (``silence/``, bracketed tone descriptions), prompts
with symbols that have no spoken form in the transcript, and prompts longer than ``--max-seconds``.
Each kept prompt is listed ``--copies`` times (ids ``allison-r<k>-<name>``), so that this one real
voice is a fair share of the batches beside thousands of synthetic utterances; the training
augmentation draws differently for every copy.
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grammar import DIGITS  # noqa: E402
from make_align_set import trim  # noqa: E402
from make_real_digits import INSTALL, write_peak_normalised  # noqa: E402

from speechtext.audio import SAMPLE_RATE, AudioSpec, load_audio  # noqa: E402
from speechtext.data import Utterance, write_data_dir  # noqa: E402

SOUNDS = "/usr/share/asterisk/sounds/en_US_f_Allison"
TRANSCRIPTS = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
LEFT_OUT_FOLDERS = ("digits/", "silence/")
DIGIT_WORD = re.compile(r"\b(" + "|".join(DIGITS) + r"|oh)\b|[0-9]")


def spoken_text(text: str) -> str | None:
    """The transcript as trained on (lower case, words and apostrophes), or None when it is not
    plain speech or says a digit."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[.,?!:;\"()]", " ", text)
    if DIGIT_WORD.search(text) or not re.fullmatch(r"[a-z' ]+", text) or not text.strip():
        return None
    return " ".join(text.split())


def read_prompts(transcripts: str) -> list[tuple[str, str]]:
    """``(name, spoken text)`` of every prompt that may be trained on, e.g. ``("agent-pass", "please ...")``."""
    if not os.path.exists(transcripts):
        sys.exit(f"make_real_prompts: {transcripts} is missing (the real training speech needs Debian's "
                 f"asterisk-core-sounds-en-wav); run tools/setup.sh or: {INSTALL}")
    prompts = []
    with gzip.open(transcripts, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            name, sep, text = line.partition(":")
            if line.startswith(";") or not sep or name.startswith(LEFT_OUT_FOLDERS):
                continue
            spoken = spoken_text(text.strip())
            if spoken:
                prompts.append((name.strip(), spoken))
    return prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data/train_real")
    parser.add_argument("--wav-dir", default="wav/train_real")
    parser.add_argument("--sounds", default=SOUNDS)
    parser.add_argument("--transcripts", default=TRANSCRIPTS)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    parser.add_argument("--limit", type=int, default=0, help="keep only the first N prompts (0: all)")
    args = parser.parse_args()
    prompts = read_prompts(args.transcripts)
    os.makedirs(args.wav_dir, exist_ok=True)
    utts, seconds = [], 0.0
    for name, text in prompts[: args.limit or None]:
        source = os.path.join(args.sounds, f"{name}.wav")
        if not os.path.exists(source):
            continue  # a transcript line without its recording (the package lists a few)
        samples = trim(load_audio(source), threshold=0.01)
        duration = len(samples) / SAMPLE_RATE
        if duration > args.max_seconds:
            continue
        path = os.path.abspath(os.path.join(args.wav_dir, name.replace("/", "_") + ".wav"))
        write_peak_normalised(path, samples)
        seconds += duration
        for k in range(1, args.copies + 1):
            utts.append(Utterance(f"allison-r{k}-{name.replace('/', '_')}", AudioSpec(path), text, "allison", None,
                                  round(duration, 3)))
    write_data_dir(args.data_dir, utts)
    print(f"train_real: {len(utts) // max(1, args.copies)} prompts of real speech (one speaker, no digits), "
          f"{seconds / 60:.1f} min, listed {args.copies} times")


if __name__ == "__main__":
    main()
