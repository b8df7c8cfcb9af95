#!/usr/bin/env python3
"""Throughput of ``speechtext`` transcription against the ``transformers`` ASR pipeline.

Every system runs the same randomly initialised wav2vec2-base-sized ``Wav2Vec2ForCTC`` checkpoint
(saved here, nothing is downloaded) on the same espeak-ng files, on CPU, in the same process: the
``transformers`` pipeline (the peer), speechtext in PyTorch (fp32, and bf16 / auto where the CPU has
native bf16), and speechtext's ONNX export in ONNX Runtime, fp32 and int8. Each side reads the files
itself (the pipeline gets soundfile-decoded arrays, since it needs ffmpeg to read paths). Prints
files/s of each (median of ``--repeats`` passes), the ratio to the pipeline, and how many
transcripts agree with the pipeline's (random weights: near-tie logits flip under int8 or bf16).

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
    return [path for path, _ in make_corpus(directory, count)]


def make_corpus(directory: str, count: int) -> list[tuple[str, str]]:
    """``count`` espeak-ng files of 1-4 commands in a row (1-10 s, five voices): ``[(path, text)]``."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "egs", "synth_commands", "local"))
    import random

    import grammar
    import librosa

    rng = random.Random(0)
    voices = ["en-us", "en-gb", "en-gb-scotland+m3", "en-us+f2", "en-029+klatt"]
    out = []
    for i in range(count):
        # 1 to 4 commands in a row: 1-10 s files, as a mixed real workload would have.
        text = ", ".join(grammar.sample(rng)[0] for _ in range(rng.randint(1, 4)))
        wav = subprocess.run(["espeak-ng", "-v", voices[i % len(voices)], "--stdout", text], capture_output=True,
                             check=True).stdout
        samples, rate = sf.read(__import__("io").BytesIO(wav), dtype="float32")
        path = os.path.join(directory, f"utt{i:04d}.wav")
        sf.write(path, librosa.resample(samples, orig_sr=rate, target_sr=16000), 16000, subtype="PCM_16")
        out.append((path, text))
    return out


def run_pipeline(asr, paths: list[str]) -> list[str]:
    return [asr({"raw": sf.read(p, dtype="float32")[0], "sampling_rate": 16000})["text"] for p in paths]


def transcribe_with(model, paths: list[str], precision: str, gemm: str) -> list[str]:
    """Texts of ``paths``; ``gemm`` is speechtext's fp32 CPU GEMM choice (SPEECHTEXT_CPU_GEMM) for this run."""
    os.environ["SPEECHTEXT_CPU_GEMM"] = gemm
    try:
        return [r.text for r in model.transcribe(paths, precision=precision)]
    finally:
        os.environ.pop("SPEECHTEXT_CPU_GEMM", None)


def clean(text: str) -> str:
    return " ".join(text.replace("</s>", "").replace("<s>", "").split())


def timed(run, repeats: int):
    """``(median seconds, last output)`` of ``repeats`` calls of ``run()``."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", default="torch-fp32,torch-mkl,onnx-fp32,onnx-int8,torch-auto",
                        help="comma-separated: torch-fp32 (linear layers on oneDNN on AMD CPUs with AVX-512), "
                        "torch-mkl (fp32, PyTorch's own MKL GEMM), torch-onednn (fp32, linear layers on oneDNN), torch-bf16, torch-auto, onnx-fp32, onnx-int8 "
                        "(torch-bf16/auto run only where the CPU has native bf16)")
    args = parser.parse_args()
    from transformers import pipeline

    import speechtext
    from speechtext.export import export_onnx
    from speechtext.precision import bf16_supported, onednn_linear_preferred

    native_bf16 = bf16_supported(torch.device("cpu"))
    gemm = "oneDNN" if onednn_linear_preferred() else "MKL"
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = os.path.join(tmp, "model")
        make_checkpoint(checkpoint)
        paths = make_files(tmp, args.files)
        audio_seconds = sum(sf.info(p).duration for p in paths)
        asr = pipeline("automatic-speech-recognition", model=checkpoint, device="cpu")
        runners = {}
        for name in args.systems.split(","):
            backend, precision = name.split("-")
            if backend == "torch" and precision in ("bf16", "auto") and not native_bf16:
                print(f"{name}: skipped (this CPU has no native bf16; emulated bf16 would be slower than fp32)")
                continue
            if backend == "torch":
                model = speechtext.load_model(checkpoint)
            else:
                onnx_path = os.path.join(tmp, f"{name}.onnx")
                export_onnx(checkpoint, onnx_path, "int8" if precision == "int8" else None)
                model = speechtext.load_model(onnx_path)
                print(f"{name}: {os.path.getsize(onnx_path) / 1e6:.1f} MB")
            prec = {"mkl": "fp32", "onednn": "fp32"}.get(precision, precision) if backend == "torch" else "fp32"
            choice = precision if precision in ("mkl", "onednn") else "auto"
            runners[name] = lambda m=model, p=prec, g=choice: transcribe_with(m, paths, p, g)
            runners[name]() if args.files <= 8 else [r.text for r in model.transcribe(paths[:4], precision=prec)]
        run_pipeline(asr, paths[:2])  # warm-up
        hf, hf_text = timed(lambda: run_pipeline(asr, paths), args.repeats)
        results = {name: timed(run, args.repeats) for name, run in runners.items()}
    print(f"{len(paths)} files, {audio_seconds:.0f} s of audio, {torch.get_num_threads()} threads, "
          f"wav2vec2-base-sized CTC (random weights), native bf16: {native_bf16}, fp32 linear layers on {gemm} "
          f"(oneDNN on AMD with AVX-512; SPEECHTEXT_CPU_GEMM overrides), median of {args.repeats}")
    print(f"{'system':28s} {'files/s':>8s} {'RTF':>8s} {'vs pipeline':>12s} {'same text as pipeline':>22s}")
    print(f"{'transformers pipeline':28s} {len(paths) / hf:8.2f} {hf / audio_seconds:8.4f} {'1.00x':>12s} {'':>22s}")
    for name, (seconds, texts) in results.items():
        agree = np.mean([clean(a) == b for a, b in zip(hf_text, texts)])
        print(f"{'speechtext ' + name:28s} {len(paths) / seconds:8.2f} {seconds / audio_seconds:8.4f} "
              f"{hf / seconds:11.2f}x {100 * agree:21.0f}%")


if __name__ == "__main__":
    main()
