#!/usr/bin/env python3
"""Synthesise the synth_commands corpus: espeak-ng voices split by voice into train/dev/test, a
``test_flite`` set from a second synthesiser (flite) whose voices are never trained on, and
``test_zeroshot``: test voices speaking command phrasings that training never contains.

Writes 16 kHz 16-bit WAVs under ``--wav-dir`` and Kaldi data dirs (wav.scp, text, utt2spk, spk2utt,
utt2intent, utt2dur) under ``--data-dir``. Deterministic for a given ``--seed``; existing WAVs are reused.
"""
from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
from multiprocessing import Pool

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grammar  # noqa: E402

from speechtext.audio import SAMPLE_RATE  # noqa: E402
from speechtext.data import Utterance, AudioSpec, write_data_dir  # noqa: E402

ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# Whispered and heavily distorted variants are left out: they are not speech a user would give a command in.
EXCLUDED_VARIANTS = {"whisper", "whisperf", "Demonic", "fast", "UniRobot"}
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]


def espeak_variants() -> list[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    files = [line.split()[4] for line in out.splitlines()[1:] if len(line.split()) > 4]
    names = sorted({f.split("/")[-1] for f in files})
    return [n for n in names if n not in EXCLUDED_VARIANTS]


def split_voices(seed: int, n_dev: int, n_test: int) -> dict[str, list[str]]:
    """All accent+variant voices, shuffled and split so that no voice is in two sets."""
    voices = [f"{a}+{v}" for a in ACCENTS for v in espeak_variants()]
    random.Random(seed).shuffle(voices)
    return {"test": voices[:n_test], "dev": voices[n_test:n_test + n_dev], "train": voices[n_test + n_dev:]}


def synthesise(job) -> tuple[str, float] | None:
    path, engine, voice, text, rate, pitch = job
    if os.path.exists(path):
        return path, sf.info(path).duration
    if engine == "espeak":
        cmd = ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text]
    else:
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={rate:.2f}", "-t", text, "-o", "/dev/stdout"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        return None
    samples, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if sr != SAMPLE_RATE:
        import librosa

        samples = librosa.resample(samples, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    samples = samples / max(1e-3, float(np.abs(samples).max())) * 0.9
    tmp = path + ".tmp.wav"
    sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, path)
    return path, len(samples) / SAMPLE_RATE


def make_jobs(split: str, count: int, voices: list[str], engine: str, wav_dir: str, rng: random.Random,
              heldout: bool = False):
    jobs, meta = [], []
    os.makedirs(os.path.join(wav_dir, split), exist_ok=True)
    for index in range(count):
        voice = voices[index % len(voices)] if index < len(voices) else rng.choice(voices)
        text, intent, _family = grammar.sample(rng, heldout)
        if engine == "espeak":
            rate, pitch = rng.randint(130, 230), rng.randint(20, 80)
        else:
            rate, pitch = rng.uniform(0.85, 1.2), 0
        speaker = voice.replace("+", "_")
        utt = f"{speaker}-{split}{index:05d}"
        path = os.path.join(wav_dir, split, f"{utt}.wav")
        jobs.append((path, engine, voice, text, rate, pitch))
        meta.append((utt, speaker, text, intent))
    return jobs, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--wav-dir", default="wav")
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-dev", type=int, default=300)
    parser.add_argument("--num-test", type=int, default=500)
    parser.add_argument("--num-flite", type=int, default=500)
    parser.add_argument("--num-zeroshot", type=int, default=500)
    parser.add_argument("--dev-voices", type=int, default=20)
    parser.add_argument("--test-voices", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    voices = split_voices(args.seed, args.dev_voices, args.test_voices)
    voices["test_flite"], voices["test_zeroshot"] = FLITE_VOICES, voices["test"]
    counts = {"train": args.num_train, "dev": args.num_dev, "test": args.num_test, "test_flite": args.num_flite,
              "test_zeroshot": args.num_zeroshot}
    with Pool(args.jobs) as pool:
        for split, count in counts.items():
            rng = random.Random(f"{args.seed}-{split}")
            engine = "flite" if split == "test_flite" else "espeak"
            jobs, meta = make_jobs(split, count, voices[split], engine, os.path.abspath(args.wav_dir), rng,
                                   heldout=split == "test_zeroshot")
            results = pool.map(synthesise, jobs, chunksize=16)
            utts = [Utterance(utt, AudioSpec(res[0]), text, spk, intent, round(res[1], 3))
                    for (utt, spk, text, intent), res in zip(meta, results) if res is not None]
            write_data_dir(os.path.join(args.data_dir, split), utts)
            print(f"{split}: {len(utts)} utterances, {len(voices[split])} voices, "
                  f"{sum(u.duration for u in utts) / 3600:.2f} h ({len(jobs) - len(utts)} failed)")


if __name__ == "__main__":
    main()
