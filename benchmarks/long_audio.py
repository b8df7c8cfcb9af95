#!/usr/bin/env python3
"""Long-audio transcription: peak memory and time against length, with the ``transformers`` ASR
pipeline's own chunking (``chunk_length_s`` / ``stride_length_s``) as the peer, and (``--onnx fp32
int8``) speechtext's ONNX export through ONNX Runtime beside the PyTorch path.

Both sides run the same randomly initialised wav2vec2-base-sized ``Wav2Vec2ForCTC`` checkpoint (saved
here, nothing is downloaded) on one long file of espeak-ng speech per length, with 30 s chunks and
5 s strides. Every run is a fresh process, so its peak resident memory (VmHWM) is its own. Prints,
per length: seconds, real-time factor and peak memory of each side, and the time ratio.

    python benchmarks/long_audio.py --minutes 1 10 60 --peer-minutes 1 10
    python benchmarks/long_audio.py --minutes 10 --peer-minutes --precision fp32 --onnx fp32 int8
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from transcribe_vs_hf import make_checkpoint, make_files  # noqa: E402


def make_long_file(directory: str, minutes: float) -> str:
    """``minutes`` of speech: 40 espeak-ng files (1-10 s each) with 0.3 s pauses, repeated."""
    pieces = [sf.read(p, dtype="float32")[0] for p in make_files(directory, 40)]
    pause = np.zeros(4800, dtype=np.float32)
    block = np.concatenate([x for p in pieces for x in (p, pause)])
    total = int(minutes * 60 * 16000)
    samples = np.tile(block, total // len(block) + 1)[:total]
    path = os.path.join(directory, f"long_{minutes:g}min.wav")
    sf.write(path, samples, 16000, subtype="PCM_16")
    return path


def peak_rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(side: str, checkpoint: str, path: str, precision: str) -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    if side != "transformers":  # speechtext in PyTorch (checkpoint: the HF dir) or ONNX Runtime (an .onnx export)
        import speechtext

        model = speechtext.load_model(checkpoint)
        result = model.transcribe([path], chunk_seconds=30.0, stride_seconds=5.0, precision=precision)[0]
        assert result.error is None, result.error
        words = len(result.words)
    else:
        from transformers import pipeline

        asr = pipeline("automatic-speech-recognition", model=checkpoint, device="cpu")
        samples = sf.read(path, dtype="float32")[0]
        text = asr({"raw": samples, "sampling_rate": 16000}, chunk_length_s=30.0, stride_length_s=5.0)["text"]
        words = len(text.split())
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_mib": peak_rss_mib(), "words": words}))


def run(side: str, checkpoint: str, path: str, precision: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", side, "--checkpoint", checkpoint, "--path", path,
                          "--precision", precision], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--peer-minutes", type=float, nargs="*", default=[1, 10],
                        help="lengths the (slower) transformers pipeline also runs")
    parser.add_argument("--precision", default="auto", help="speechtext's precision (auto: bf16 where the CPU has it)")
    parser.add_argument("--onnx", nargs="*", default=[], choices=["fp32", "int8"],
                        help="also run speechtext's ONNX export through ONNX Runtime (fp32 and/or int8)")
    parser.add_argument("--child", default="")
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--path", default="")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.checkpoint, args.path, args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = os.path.join(tmp, "w2v2-base")
        make_checkpoint(checkpoint)
        sides = {"speechtext": checkpoint}
        for q in args.onnx:
            from speechtext.export import export_onnx

            sides[f"onnx-{q}"] = export_onnx(checkpoint, os.path.join(tmp, f"{q}.onnx"), None if q == "fp32" else q)[0]
        print(f"{'minutes':>7} {'side':>12} {'seconds':>8} {'RTF':>6} {'peak MiB':>9} {'ratio':>6}")
        for minutes in args.minutes:
            path = make_long_file(tmp, minutes)
            for side, model in sides.items():
                result = run(side, model, path, args.precision if side == "speechtext" else "fp32")
                if side == "speechtext":
                    ours = result
                print(f"{minutes:7g} {side:>12} {result['seconds']:8.1f} {result['seconds'] / (60 * minutes):6.3f} "
                      f"{result['peak_mib']:9.0f}", flush=True)
            if minutes in args.peer_minutes:
                peer = run("transformers", checkpoint, path, args.precision)
                print(f"{minutes:7g} {'transformers':>12} {peer['seconds']:8.1f} {peer['seconds'] / (60 * minutes):6.3f} "
                      f"{peer['peak_mib']:9.0f} {peer['seconds'] / ours['seconds']:6.2f}x", flush=True)
            os.remove(path)


if __name__ == "__main__":
    main()
