#!/usr/bin/env python3
"""Throughput of ``speechtext`` transcription against the ``transformers`` ASR pipeline.

Both run the same randomly initialised wav2vec2-base-sized ``Wav2Vec2ForCTC`` checkpoint (saved here,
nothing is downloaded) on the same espeak-ng files, on CPU, in the same process. Each side reads
the files itself (the pipeline gets soundfile-decoded arrays, since it needs ffmpeg to read paths).
Prints files/s of each (median of ``--repeats`` passes), the ratio, and how many transcripts agree.

    python benchmarks/transcribe_vs_hf.py --files 120 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch


def make_checkpoint(path: str) -> None:
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    letters = "ETAONISRHLDUCMGWFPYBVKXJQZ'"
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate(letters)}}
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "vocab.json"), "w") as handle:
        json.dump(vocab, handle)
    tokenizer = Wav2Vec2CTCTokenizer(os.path.join(path, "vocab.json"))
    Wav2Vec2Processor(feature_extractor=Wav2Vec2FeatureExtractor(), tokenizer=tokenizer).save_pretrained(path)
    torch.manual_seed(0)
    # Wav2Vec2Config's defaults are wav2vec2-base's shapes (95 M parameters).
    Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=len(vocab), pad_token_id=0)).save_pretrained(path)


def make_files(directory: str, count: int) -> list[str]:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "egs", "synth_commands", "local"))
    import random

    import grammar
    import librosa

    rng = random.Random(0)
    voices = ["en-us", "en-gb", "en-gb-scotland+m3", "en-us+f2", "en-029+klatt"]
    paths = []
    for i in range(count):
        # 1 to 4 commands in a row: 1-10 s files, as a mixed real workload would have.
        text = ", ".join(grammar.sample(rng)[0] for _ in range(rng.randint(1, 4)))
        wav = subprocess.run(["espeak-ng", "-v", voices[i % len(voices)], "--stdout", text], capture_output=True,
                             check=True).stdout
        samples, rate = sf.read(__import__("io").BytesIO(wav), dtype="float32")
        path = os.path.join(directory, f"utt{i:04d}.wav")
        sf.write(path, librosa.resample(samples, orig_sr=rate, target_sr=16000), 16000, subtype="PCM_16")
        paths.append(path)
    return paths


def run_pipeline(asr, paths: list[str]) -> list[str]:
    return [asr({"raw": sf.read(p, dtype="float32")[0], "sampling_rate": 16000})["text"] for p in paths]


def clean(text: str) -> str:
    return " ".join(text.replace("</s>", "").replace("<s>", "").split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="speechtext precision: auto, fp32 or bf16")
    args = parser.parse_args()
    from transformers import pipeline

    import speechtext

    with tempfile.TemporaryDirectory() as tmp:
        make_checkpoint(os.path.join(tmp, "model"))
        paths = make_files(tmp, args.files)
        audio_seconds = sum(sf.info(p).duration for p in paths)
        asr = pipeline("automatic-speech-recognition", model=os.path.join(tmp, "model"), device="cpu")
        ours = speechtext.load_model(os.path.join(tmp, "model"))
        run_pipeline(asr, paths[:2]), ours.transcribe(paths[:2])  # warm-up
        hf_times, st_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            hf_text = run_pipeline(asr, paths)
            hf_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            st_text = [r.text for r in ours.transcribe(paths, precision=args.precision)]
            st_times.append(time.perf_counter() - start)
    hf, st = statistics.median(hf_times), statistics.median(st_times)
    agree = np.mean([clean(a) == b for a, b in zip(hf_text, st_text)])
    print(f"{len(paths)} files, {audio_seconds:.0f} s of audio, {torch.get_num_threads()} threads, "
          f"wav2vec2-base-sized CTC (random weights)")
    print(f"transformers pipeline : {len(paths) / hf:6.2f} files/s  RTF {hf / audio_seconds:.4f}  (median of {args.repeats})")
    print(f"speechtext transcribe : {len(paths) / st:6.2f} files/s  RTF {st / audio_seconds:.4f}  precision={args.precision}")
    print(f"ratio (speechtext / pipeline throughput): {hf / st:.2f}x; identical transcripts: {100 * agree:.0f} %")


if __name__ == "__main__":
    main()
