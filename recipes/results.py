#!/usr/bin/env python3
"""Write an experiment's section of a recipe's RESULTS.md: one row per test set and decoder (WER, CER,
sentence errors), word-alignment and cross-modal figures when there are any, how the model was
trained and how long each stage took. Other experiments' sections stay."""
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


def precision_text(training: dict) -> str:
    """The precision training ran in, and whether this CPU/GPU has native bf16 (auto's choice)."""
    from speechtext.precision import bf16_supported

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ran = {"none": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}.get(training.get("precision"), "not recorded")
    return f"{ran} (native bf16 on this {device.type}: {'yes' if bf16_supported(device) else 'no'})"


def steps_text(training: dict) -> str:
    """How many steps ran and, under a time budget (``train.max_minutes``), whether the budget or the
    step cap (``train.max_steps``) ended the run."""
    steps = f"{training.get('steps', '?')} steps"
    if training.get("max_minutes"):
        budget = f"{training['max_minutes']:g}-minute budget"
        why = (f"all of train.max_steps: this machine did them within the {budget}"
               if training.get("steps") == training.get("max_steps")
               else f"the steps that fit the {budget} on this machine: train.max_minutes")
        steps += f" in {training.get('minutes', '?')} min ({why})"
    return f"{steps}, averaged {', '.join(training.get('averaged', []))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exp", required=True)
    parser.add_argument("--sets", required=True)
    parser.add_argument("--decoders", default="greedy")
    parser.add_argument("--align-set", default="")
    parser.add_argument("--out", default="RESULTS.md")
    args = parser.parse_args()
    meta = json.load(open(os.path.join(args.exp, "final", "speechtext.json"), encoding="utf-8"))
    rows = []
    for name in args.sets.split():
        for decoder in args.decoders.split():
            hyp = os.path.join(args.exp, f"decode_{name}_{decoder.replace('+', '_')}", "hyp.txt")
            result = score_files(os.path.join("data", name, "text"), hyp)
            rows.append(f"| {name} | {decoder} | {result['sentences']} | {result['wer']:.2f} | {result['cer']:.2f} | "
                        f"{100 * result['sentence_errors'] / max(1, result['sentences']):.1f} |")
    align_file = os.path.join(args.exp, f"align_{args.align_set}.json")
    if args.align_set and os.path.exists(align_file):
        rows += ["", f"| word alignment of {args.align_set} (forced, reference text) | value |", "|---|---|"]
        rows += [f"| {k} | {v} |" for k, v in json.load(open(align_file, encoding="utf-8")).items()]
    peers_file = os.path.join(args.exp, "peers.json")
    if os.path.exists(peers_file):
        from eval_peers import peers_table

        rows += ["", *peers_table(peers_file)]
    crossmodal_file = os.path.join(args.exp, "crossmodal.json")
    crossmodal = json.load(open(crossmodal_file, encoding="utf-8")) if os.path.exists(crossmodal_file) else {}
    rows += ["", "| cross-modal metric | % |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in crossmodal.items()] if crossmodal else []
    times = stage_times(args.exp)
    training = meta.get("training", {})
    section = [
        f"## {args.exp}", "",
        f"Model `{args.exp}/final`; written {datetime.date.today()} by `recipes/results.py`. Decoders: greedy = CTC "
        "best path, ctc = CTC prefix beam search, attention / joint = the attention decoder's beam search (joint "
        "adds CTC prefix scores), +lm = shallow fusion with the token LM of stage 3.", "",
        "| test set | decoder | utterances | WER % | CER % | sentence errors % |", "|---|---|---|---|---|---|", *rows, "",
        f"- training: {steps_text(training)}; best dev WER {training.get('best_dev_wer', float('nan')):.2f} %; "
        f"precision {precision_text(training)}",
        f"- stage times (s): {', '.join(f'{k} {v}' for k, v in sorted(times.items()))}; total {sum(times.values())} s",
        f"- machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}", "", "",
    ]
    write_section(args.out, args.exp, "\n".join(section))
    print("\n".join(section))


def write_section(path: str, exp: str, text: str) -> None:
    """Replace this experiment's section of RESULTS.md (or add it), keeping the other experiments'."""
    title = f"# Results: {os.path.basename(os.getcwd())}\n\n"
    sections: dict[str, str] = {}
    if os.path.exists(path):
        body = open(path, encoding="utf-8").read()
        for chunk in body.split("\n## ")[1:]:
            sections[chunk.split("\n", 1)[0].strip()] = "## " + chunk.rstrip("\n") + "\n\n"
    sections[exp] = text
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(title + "".join(sections[k] for k in sorted(sections)))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
