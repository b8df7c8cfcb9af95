#!/usr/bin/env python3
"""The ablation table (augmentation and front end): greedy-CTC WER % per variant (rows) and test set (columns)."""
from __future__ import annotations

import argparse
import json
import os

from speechtext.score import score_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", required=True)
    parser.add_argument("--sets", required=True)
    parser.add_argument("--out", default="exp/ablation/RESULTS.md")
    args = parser.parse_args()
    sets = args.sets.split()
    lines = ["| variant | " + " | ".join(f"{s} WER %" for s in sets) + " | precision |",
             "|---" * (len(sets) + 2) + "|"]
    for variant in args.variants.split():
        exp = os.path.join("exp", "ablation", variant)
        cells = [f"{score_files(os.path.join('data', s, 'text'), os.path.join(exp, f'hyp_{s}.txt'))['wer']:.2f}"
                 for s in sets]
        with open(os.path.join(exp, "final", "speechtext.json"), encoding="utf-8") as handle:
            precision = json.load(handle).get("training", {}).get("precision", "?")
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {precision} |")
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
