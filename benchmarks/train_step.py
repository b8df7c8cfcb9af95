#!/usr/bin/env python3
"""Seconds per training step of a recipe's model, this checkout against an earlier commit of speechtext.

Both time the same optimizer steps (forward, backward, AdamW) of the model that ``--config`` builds,
on the same batches of ``--train-dir`` (the training seed fixes their order), in fp32 unless
``--amp`` says otherwise, one fresh process each, taking turns ``--rounds`` times; the earlier
commit runs from a temporary ``git worktree``. Prints each run's median over its steps (the first
``--warmup`` left out), the medians over runs and their ratio. Run it where the data dir exists:

    cd egs/synth_commands && python ../../benchmarks/train_step.py --config conf/train.yaml \\
        --train-dir data/train --valid-dir data/dev --against HEAD~1
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def step_seconds(trainer, batch) -> float:
    """Wall seconds of one optimizer step of ``trainer``'s model on ``batch``: forward, backward, AdamW (no
    clipping, scheduler or loader: what a config change can make faster or slower)."""
    start = time.perf_counter()
    loss, _ = trainer.model(batch)
    loss.backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad()
    return time.perf_counter() - start


def time_steps(args) -> None:
    """The child process: time ``--steps`` steps with the speechtext on ``sys.path`` and print the median."""
    import torch

    from speechtext.config import load_config
    from speechtext.train import RunSampler, Trainer, train_mode

    torch.set_num_threads(args.threads)
    overrides = {"train.amp": args.amp, "train.max_steps": args.steps + 1, "data.num_workers": 0}
    trainer = Trainer(load_config(args.config, overrides), args.train_dir, args.valid_dir, tempfile.mkdtemp())
    train_mode(trainer.model)
    loader = torch.utils.data.DataLoader(trainer.train_set, batch_size=None, sampler=RunSampler(trainer.train_set, 0, 0))
    times = []
    for batch in loader:
        times.append(step_seconds(trainer, batch))
        if len(times) == args.steps:
            break
    print(f"MEDIAN {statistics.median(times[args.warmup:]):.4f}")


def run(root: str, args) -> float:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--config", args.config, "--train-dir", args.train_dir,
           "--valid-dir", args.valid_dir, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--amp", args.amp]
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("MEDIAN")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--train-dir", required=True)
    parser.add_argument("--valid-dir", required=True)
    parser.add_argument("--against", default="HEAD", help="The earlier commit (default: HEAD, i.e. uncommitted changes).")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--amp", default="none")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return time_steps(args)
    with tempfile.TemporaryDirectory() as tmp:
        old = os.path.join(tmp, "old")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", old, args.against], check=True)
        try:
            medians = {"this checkout": [], args.against: []}
            for _ in range(args.rounds):
                medians[args.against].append(run(old, args))
                medians["this checkout"].append(run(ROOT, args))
                print({name: [round(m, 3) for m in ms] for name, ms in medians.items()}, flush=True)
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", old], check=False)
    new, base = statistics.median(medians["this checkout"]), statistics.median(medians[args.against])
    print(f"s/step: {args.against} {base:.3f}, this checkout {new:.3f}; {base / new:.2f}x the steps per second")


if __name__ == "__main__":
    main()
