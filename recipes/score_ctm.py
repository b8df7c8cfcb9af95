#!/usr/bin/env python3
"""Word-boundary error of a hypothesis CTM against a reference CTM with the same words (e.g. the
forced alignment of the reference text): median and mean absolute error of word starts and ends,
and the share of boundaries within 20 / 50 / 100 ms. Writes ``--out`` (JSON) and prints a summary."""
from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np


def read_ctm(path: str) -> dict[str, list[tuple[float, float, str]]]:
    out = defaultdict(list)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 5:
                raise SystemExit(f"{path}:{number}: expected '<utt> <channel> <start> <duration> <word> [conf]'")
            start, duration = float(fields[2]), float(fields[3])
            out[fields[0]].append((start, start + duration, fields[4]))
    return out


def boundary_errors(ref: dict, hyp: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """Absolute start and end errors (s) over utterances whose word sequences agree; and how many disagree."""
    starts, ends, skipped = [], [], 0
    for utt, words in ref.items():
        other = hyp.get(utt, [])
        if [w for _, _, w in words] != [w for _, _, w in other]:
            skipped += 1
            continue
        starts += [abs(a[0] - b[0]) for a, b in zip(words, other)]
        ends += [abs(a[1] - b[1]) for a, b in zip(words, other)]
    return np.array(starts), np.array(ends), skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ref")
    parser.add_argument("hyp")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    starts, ends, skipped = boundary_errors(read_ctm(args.ref), read_ctm(args.hyp))
    both = np.concatenate([starts, ends])
    if not len(both):
        raise SystemExit(f"{args.hyp}: no utterance has the reference's words")
    result = {"words": int(len(starts)), "utterances_skipped": skipped,
              "median_boundary_error_ms": 1000 * float(np.median(both)),
              "median_start_error_ms": 1000 * float(np.median(starts)), "median_end_error_ms": 1000 * float(np.median(ends)),
              "mean_boundary_error_ms": 1000 * float(both.mean())}
    result.update({f"within_{ms}ms_%": 100 * float((both <= ms / 1000).mean()) for ms in (20, 50, 100)})
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({k: round(v, 2) for k, v in result.items()}, handle, indent=1)
    print(" ".join(f"{k}={v:.1f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
