#!/usr/bin/env python3
"""Seconds per training step of config variants, paired: one model per variant, in one process, each
taking its step on the same batch in turn.

The peer is the config unchanged (``recipe``), run first and once more last (``recipe again``), so the
order's own effect shows. The speed of a shared VM drifts by tens of percent within minutes; taking
turns step by step puts that drift on every variant alike, which separate runs cannot. Prints each
variant's mean seconds a step (forward, backward, AdamW; the loader's time left out, since every
variant reads the same batch) and the mean and median of its per-step ratio to ``recipe``. Run it
where the data dir exists:

    cd egs/synth_commands && python ../../benchmarks/train_step_variants.py --config conf/train.yaml \\
        --train-dir data/train --valid-dir data/dev \\
        --variant "fusion dropout 0.1: model.fusion.dropout=0.1" --steps 40
"""
from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

from speechtext.config import ConfigError, load_config, parse_overrides
from speechtext.train import Trainer, train_mode
from train_step import step_seconds  # benchmarks/, this script's own folder


def parse_variant(text: str) -> tuple[str, dict]:
    """``"name: key=value, key=value"`` -> ``(name, overrides)``; values are read as YAML."""
    name, _, sets = text.partition(":")
    try:
        return name.strip(), parse_overrides(filter(None, (part.strip() for part in sets.split(","))),
                                             where=f"--variant {text!r}")
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--train-dir", required=True)
    parser.add_argument("--valid-dir", required=True)
    parser.add_argument("--variant", action="append", default=[], help='"name: key=value, ..." (repeatable)')
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [("recipe", {}), *map(parse_variant, args.variant), ("recipe again", {})]
    models = {}
    for name, overrides in variants:
        trainer = Trainer(load_config(args.config, {"train.amp": "none", **overrides}), args.train_dir,
                          args.valid_dir, tempfile.mkdtemp())
        train_mode(trainer.model)
        models[name] = trainer
    batches = iter(models["recipe"].train_set)
    times = {name: [] for name in models}
    for index in range(args.warmup + args.steps):
        batch = next(batches)
        for name, trainer in models.items():
            seconds = step_seconds(trainer, batch)
            if index >= args.warmup:
                times[name].append(seconds)
    base = times["recipe"]
    for name, seconds in times.items():
        ratios = [a / b for a, b in zip(seconds, base)]
        print(f"{name}: {statistics.mean(seconds):.4f} s/step; to recipe: mean {sum(seconds) / sum(base):.3f}x, "
              f"median {statistics.median(ratios):.3f}x")


if __name__ == "__main__":
    main()
