#!/usr/bin/env python3
"""Write a recipe's RESULTS.md: one row per test set (WER, CER, sentence errors) plus how the model was
trained and how long each stage took, read from the experiment directory."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform

import torch

from speechtext.score import score_files


def stage_times(exp: str) -> dict[str, int]:
    times: dict[str, int] = {}
    if os.path.exists(f"{exp}.timing"):
        for line in open(f"{exp}.timing", encoding="utf-8"):
            name, seconds = line.split()
            times[name] = times.get(name, 0) + int(seconds)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exp", required=True)
    parser.add_argument("--sets", required=True)
    parser.add_argument("--out", default="RESULTS.md")
    args = parser.parse_args()
    meta = json.load(open(os.path.join(args.exp, "final", "speechtext.json"), encoding="utf-8"))
    rows = []
    for name in args.sets.split():
        result = score_files(os.path.join("data", name, "text"), os.path.join(args.exp, f"decode_{name}", "hyp.txt"))
        rows.append(f"| {name} | {result['sentences']} | {result['wer']:.2f} | {result['cer']:.2f} | "
                    f"{100 * result['sentence_errors'] / max(1, result['sentences']):.1f} |")
    times = stage_times(args.exp)
    training = meta.get("training", {})
    lines = [
        f"# Results: {os.path.basename(os.getcwd())}", "",
        f"Model `{args.exp}/final`, CTC greedy decoding. Written {datetime.date.today()} by `recipes/results.py`.", "",
        "| test set | utterances | WER % | CER % | sentence errors % |", "|---|---|---|---|---|", *rows, "",
        f"- training: {training.get('steps', '?')} steps, averaged {', '.join(training.get('averaged', []))}; "
        f"best dev WER {training.get('best_dev_wer', float('nan')):.2f} %",
        f"- stage times (s): {', '.join(f'{k} {v}' for k, v in sorted(times.items()))}; total {sum(times.values())} s",
        f"- machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}", "",
    ]
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
