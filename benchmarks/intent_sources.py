#!/usr/bin/env python3
"""Closed-set intents from the audio, the transcript or both: seconds and accuracy on one data dir.

The peer is the intent head alone (``intent_from="audio"``, the answer before the transcript
classifier), timed in the same process on the same files. After one warm-up the sources take turns,
``--repeats`` rounds; prints the median seconds, the ratio to the audio alone and the accuracy against the
data dir's ``utt2intent``. Run in a recipe directory after its stage 5, e.g.

    cd egs/synth_commands && python ../../benchmarks/intent_sources.py exp/train/final data/test_flite \\
        --lm exp/train/lm
"""
from __future__ import annotations

import argparse
import statistics
import time

import speechtext
from speechtext.config import TranscribeOptions
from speechtext.data import read_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("data_dir", help="a Kaldi data dir with utt2intent")
    parser.add_argument("--lm", default="", help="token LM for the joint + LM transcript (skipped without)")
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = speechtext.load_model(args.model)
    data = [u for u in read_data_dir(args.data_dir, check_files=False) if u.intent]
    inputs, truth = [(u.utt_id, u.audio) for u in data], {u.utt_id: u.intent for u in data}
    runs = [("audio (the intent head alone)", {"intent_from": "audio"}),
            ("both, greedy transcript (the default)", {})]
    if args.lm:
        runs.append(("both, joint + LM transcript",
                     {"options": TranscribeOptions(decoder="joint", beam_size=args.beam, lm=args.lm)}))
    model.classify_command(inputs, intent_from="audio")  # warm-up: threads, allocator, file cache
    seconds, accuracy = {name: [] for name, _ in runs}, {}
    for _ in range(args.repeats):  # the sources take turns, so that the VM's drift hits each alike
        for name, kwargs in runs:
            start = time.perf_counter()
            results = model.classify_command(inputs, **kwargs)
            seconds[name].append(time.perf_counter() - start)
            accuracy[name] = 100 * sum(r.command == truth[r.id] for r in results) / len(results)
    print(f"{len(inputs)} files of {args.data_dir}, median of {args.repeats}")
    base = statistics.median(seconds[runs[0][0]])
    for name, _ in runs:
        median = statistics.median(seconds[name])
        print(f"{name}: {median:.2f} s ({median / base:.2f}x the audio alone), intent accuracy {accuracy[name]:.1f} %")


if __name__ == "__main__":
    main()
