#!/usr/bin/env python3
"""Write the ONNX export's section of RESULTS.md: WER of PyTorch fp32, ONNX Runtime fp32 and int8 on
the same test sets and decoders (recipes/export.sh), how many transcripts differ from PyTorch's,
decoding wall-clock times and model sizes."""
from __future__ import annotations

import argparse
import datetime
import glob
import os
import sys

from results import write_section

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from speechtext.data import read_table  # noqa: E402
from speechtext.score import score_files  # noqa: E402

SYSTEMS = ("torch_fp32", "onnx_fp32", "onnx_int8")


def _hyps(path: str) -> dict[str, str]:
    return {key: rest for _, key, rest in read_table(path)}


def _seconds(directory: str) -> float:
    start, end = open(os.path.join(directory, "wallclock"), encoding="utf-8").read().split()
    return float(end.replace(",", ".")) - float(start.replace(",", "."))


def _size(path: str) -> float:
    """MB of the recogniser graph and the other graphs of its export (<stem>.<part>.onnx)."""
    return sum(os.path.getsize(p) for p in [path, *glob.glob(f"{path[:-5]}.*.onnx")]) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--sets", required=True)
    parser.add_argument("--decoders", default="greedy")
    parser.add_argument("--out", default="RESULTS.md")
    args = parser.parse_args()
    exp = os.path.dirname(args.model)
    rows = []
    for name in args.sets.split():
        for decoder in args.decoders.split():
            dirs = {s: os.path.join(exp, f"decode_{name}_{decoder}_{s}") for s in SYSTEMS}
            scores = {s: score_files(os.path.join("data", name, "text"), os.path.join(d, "hyp.txt")) for s, d in dirs.items()}
            reference = _hyps(os.path.join(dirs["torch_fp32"], "hyp.txt"))
            for system in SYSTEMS:
                hyps = _hyps(os.path.join(dirs[system], "hyp.txt"))
                differ = sum(hyps.get(k) != v for k, v in reference.items())
                delta = scores[system]["wer"] - scores["torch_fp32"]["wer"]
                rows.append(f"| {name} | {decoder} | {system.replace('_', ' ')} | {scores[system]['wer']:.2f} | "
                            f"{delta:+.2f} | {differ} of {len(reference)} | {_seconds(dirs[system]):.1f} |")
    weights = os.path.getsize(os.path.join(args.model, "model.safetensors")) / 1e6
    sizes = {q: _size(os.path.join(exp, "onnx", f"model.{q}.onnx")) for q in ("fp32", "int8")}
    section = [
        f"## {exp}/onnx", "",
        f"The recogniser of `{args.model}` exported by `speechtext export` (fp32, and `--quantize int8`) and decoded "
        f"through ONNX Runtime with the same decoders, beside PyTorch in fp32; written {datetime.date.today()} by "
        "`recipes/export_results.py`. Times are each `speechtext transcribe` alone (one process runs them all: no start-up, the model load included).", "",
        "| test set | decoder | system | WER % | vs PyTorch fp32 | transcripts differing from PyTorch fp32 | seconds |",
        "|---|---|---|---|---|---|---|", *rows, "",
        f"- sizes: PyTorch weights {weights:.1f} MB; ONNX fp32 {sizes['fp32']:.1f} MB; ONNX int8 {sizes['int8']:.1f} MB "
        f"({sizes['fp32'] / max(sizes['int8'], 1e-9):.1f}x smaller than fp32); all graphs of the export together",
        f"- one-file archive: `{exp}/model.tar.gz` (`speechtext pack`)", "", "",
    ]
    write_section(args.out, f"{exp}/onnx", "\n".join(section))
    print("\n".join(section))


if __name__ == "__main__":
    main()
