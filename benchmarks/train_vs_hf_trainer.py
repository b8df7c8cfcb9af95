#!/usr/bin/env python3
"""Training throughput of ``speechtext train`` against ``transformers.Trainer`` on the same model and data.

Both train the same wav2vec2 CTC model from scratch: ``Wav2Vec2ForCTC`` with speechtext's ``tiny``
preset shapes (the recipe's encoder; ``--preset base`` for wav2vec2-base's) and a linear CTC layer
over the same character vocabulary, on the same espeak-ng utterances (1-10 s), on CPU, fp32, with
AdamW, no augmentation, the same number of threads, each in a fresh process, one after the other. Batch size:
the Trainer takes ``--batch-size`` utterances per step; speechtext batches by duration, so it is
given the budget that holds the same number of utterances on average (``--batch-size`` x mean
duration) and the achieved mean is printed beside it. Peers: the Trainer as configured by default
(random batches) and with ``train_sampling_strategy="group_by_length"`` (its length-grouped
sampler; ``group_by_length=True`` before transformers 5). The Trainer's
dataset holds the decoded, normalised audio in memory; speechtext reads the files in its loader.

Prints samples (utterances) per second of each over ``--steps`` optimizer steps, the ratio, and the
share of padding in the batches, which is where most of the difference comes from.

    python benchmarks/train_vs_hf_trainer.py --files 240 --steps 40 --batch-size 8
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from transcribe_vs_hf import make_corpus  # noqa: E402


def hf_train(corpus, tokenizer, encoder_config, args, group_by_length: bool, out_dir: str) -> dict:
    """``transformers.Trainer`` on ``Wav2Vec2ForCTC``: samples/s and padding share."""
    from transformers import Trainer, TrainingArguments, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    from speechtext.audio import normalize

    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(encoder_config)
    data = [{"input_values": normalize(sf.read(path, dtype="float32")[0]), "labels": tokenizer.encode(text)}
            for path, text in corpus]
    padding = []

    def collate(rows):
        longest = max(len(r["input_values"]) for r in rows)
        padding.append(1 - sum(len(r["input_values"]) for r in rows) / (longest * len(rows)))
        values = torch.zeros(len(rows), longest)
        mask = torch.zeros(len(rows), longest, dtype=torch.long)
        labels = torch.full((len(rows), max(len(r["labels"]) for r in rows)), -100)
        for i, r in enumerate(rows):
            values[i, :len(r["input_values"])], mask[i, :len(r["input_values"])] = torch.from_numpy(r["input_values"]), 1
            labels[i, :len(r["labels"])] = torch.tensor(r["labels"])
        return {"input_values": values, "attention_mask": mask, "labels": labels}

    targs = TrainingArguments(out_dir, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
                              learning_rate=1e-3, warmup_steps=5, weight_decay=0.01, logging_steps=args.steps,
                              save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
                              train_sampling_strategy="group_by_length" if group_by_length else "random",
                              disable_tqdm=True,
                              seed=0, max_grad_norm=5.0)
    # The feature extractor as processing_class tells the length-grouped sampler to measure input_values.
    trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=collate,
                      processing_class=Wav2Vec2FeatureExtractor())
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"samples_per_second": args.steps * args.batch_size / seconds, "utts_per_batch": args.batch_size,
            "padding": float(np.mean(padding))}


def speechtext_train(train_dir: str, mean_seconds: float, args, out_dir: str) -> dict:
    """``speechtext train`` (CTC only, the same encoder shapes): samples/s from its own log."""
    from speechtext.batching import make_batches, utterance_durations
    from speechtext.config import Config, DataConfig, EncoderConfig, ModelConfig, TrainConfig
    from speechtext.data import read_data_dir
    from speechtext.train import train

    budget = args.batch_size * mean_seconds
    config = Config(model=ModelConfig(encoder=EncoderConfig(preset=args.preset), heads=["ctc"]),
                    data=DataConfig(max_batch_seconds=budget, speed_perturb=[], noise_prob=0.0, gain_db=0.0,
                                    num_workers=1),
                    train=TrainConfig(lr=1e-3, warmup_steps=5, max_steps=args.steps, log_interval=args.steps,
                                      valid_interval=args.steps, amp="none", average_best=1, seed=0))
    train(config, train_dir, os.path.join(os.path.dirname(train_dir), "dev"), out_dir)
    with open(os.path.join(out_dir, "metrics.jsonl"), encoding="utf-8") as handle:
        entry = [json.loads(line) for line in handle if '"utts_per_second"' in line][-1]
    durations = utterance_durations(read_data_dir(train_dir))
    batches = make_batches(durations, budget, 0, 0)
    padding = np.mean([1 - sum(durations[i] for i in b) / (max(durations[i] for i in b) * len(b)) for b in batches])
    return {"samples_per_second": entry["utts_per_second"], "utts_per_batch": len(durations) / len(batches),
            "padding": float(padding)}


def child(args) -> dict:
    """One system's run in this (fresh) process, on the corpus in ``args.work``."""
    from transformers import Wav2Vec2Config

    from speechtext.data import read_data_dir
    from speechtext.models.audio_encoder import PRESETS
    from speechtext.tokenizer import load_tokenizer

    train_dir = os.path.join(args.work, "train")
    data = read_data_dir(train_dir)
    corpus = [(u.audio.source, u.text) for u in data]
    tokenizer = load_tokenizer(args.work)
    if args.child == "speechtext":
        return speechtext_train(train_dir, float(np.mean([u.duration for u in data])), args, os.path.join(args.work, "st"))
    encoder = Wav2Vec2Config(**PRESETS[args.preset], vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.blank_id,
                             ctc_loss_reduction="sum")
    encoder._attn_implementation = "sdpa"
    return hf_train(corpus, tokenizer, encoder, args, args.child == "hf-grouped", os.path.join(args.work, args.child))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=240)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "base"])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each system; the median samples/s is printed")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--work", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    from speechtext.audio import AudioSpec
    from speechtext.data import Utterance, write_data_dir
    from speechtext.tokenizer import CharTokenizer

    names = {"hf": "transformers Trainer", "hf-grouped": "transformers Trainer, grouped by length",
             "speechtext": "speechtext train"}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(tmp, args.files)
        CharTokenizer.build(text for _, text in corpus).save(tmp)
        durations = [sf.info(p).duration for p, _ in corpus]
        utts = [Utterance(f"u{i:04d}", AudioSpec(p), t, "spk", None, d) for i, ((p, t), d) in enumerate(zip(corpus, durations))]
        write_data_dir(os.path.join(tmp, "train"), utts)
        write_data_dir(os.path.join(tmp, "dev"), random.Random(0).sample(utts, 4))
        runs = {key: [] for key in names}
        for _ in range(args.repeats):  # interleaved, each in a fresh process: no run inherits another's threads
            for key in names:
                shutil.rmtree(os.path.join(tmp, "st"), ignore_errors=True)
                out = subprocess.run([sys.executable, __file__, "--child", key, "--work", tmp, "--files", str(args.files),
                                      "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--preset",
                                      args.preset], capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{key} failed:\n{out.stderr[-3000:]}")
                runs[key].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for key, rows in runs.items():
            results[names[key]] = {**rows[0], "samples_per_second": statistics.median(r["samples_per_second"] for r in rows)}
    print(f"{args.files} utterances ({sum(durations):.0f} s, mean {np.mean(durations):.1f} s), {args.steps} steps, "
          f"batch {args.batch_size}, {args.preset} wav2vec2 CTC, fp32, {torch.get_num_threads()} threads, one process each, "
          f"median of {args.repeats}")
    base = results[names["hf"]]["samples_per_second"]
    print(f"{'system':40s} {'samples/s':>10s} {'vs Trainer':>11s} {'utts/batch':>11s} {'padding':>8s}")
    for name, r in results.items():
        print(f"{name:40s} {r['samples_per_second']:10.2f} {r['samples_per_second'] / base:10.2f}x "
              f"{r['utts_per_batch']:11.1f} {100 * r['padding']:7.1f}%")


if __name__ == "__main__":
    main()
