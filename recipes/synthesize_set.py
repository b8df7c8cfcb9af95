#!/usr/bin/env python3
"""Synthesise held-out sentences in held-out voices, each from a reference that is another utterance
of the same voice (never the target itself), for ``eval_synthesis.py`` to score against the real ones.

Targets: ``--per-voice`` utterances of each of at most ``--voices`` speakers of ``--data`` (sorted,
deterministic); a target's reference is the longest other utterance of its voice (commands are short,
and a reference needs a second of the voice). ``--unrelated`` takes the
reference from another voice instead (the floor of the voice-similarity test). Writes
``<out-dir>/<utt>.wav`` and ``<utt>.npz`` (conditioning), ``pairs`` (``utt reference-utt``) and
``timing.json`` (wall clock, audio seconds, real-time factor of text -> waveform).

``--ceiling real`` writes the real target utterances instead, ``--ceiling griffin-lim`` the real
utterances' log-mel inverted by the model's vocoder: what the judges give the real voice, and the
best this vocoder could give it, on the same sentences (``--like``: those a synthesis dir holds).
"""
from __future__ import annotations

import argparse
import json
import os
import time

from speechtext import load_model
from speechtext.audio import load_audio, probe_duration
from speechtext.data import read_data_dir
from speechtext.synthesis import save_result


def pairs_of(data, voices: int, per_voice: int, unrelated: bool) -> list[tuple[object, object]]:
    by_voice: dict[str, list] = {}
    for utt in sorted(data, key=lambda u: u.utt_id):
        by_voice.setdefault(utt.speaker or utt.utt_id, []).append(utt)
    names = [v for v in sorted(by_voice) if len(by_voice[v]) > 1][:voices]
    pairs = []
    for k, voice in enumerate(names):
        utts = by_voice[voice]
        for target in utts[:per_voice]:
            pool = by_voice[names[(k + 1) % len(names)]] if unrelated else [u for u in utts if u is not target]
            pairs.append((target, max(pool, key=lambda u: u.duration or probe_duration(u.audio))))
    return pairs


def write_ceiling(pipeline, targets, kind: str, out_dir: str) -> None:
    """The real targets (``real``) or their log-mel through the model's vocoder (``griffin-lim``)."""
    import soundfile as sf
    import torch

    from speechtext.mel import LogMel
    from speechtext.synthesis import vocoder_of

    mel = LogMel(pipeline.model.heads["synthesis"].cfg.mel)
    for utt in targets:
        wave = load_audio(utt.audio)
        if kind == "griffin-lim":
            log_mel, lengths = mel(torch.from_numpy(wave)[None])
            wave = vocoder_of(pipeline)(log_mel, lengths)[0]
        sf.write(os.path.join(out_dir, f"{utt.utt_id}.wav"), wave, 16000, subtype="PCM_16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--voices", type=int, default=20)
    parser.add_argument("--per-voice", type=int, default=3)
    parser.add_argument("--unrelated", action="store_true")
    parser.add_argument("--ceiling", choices=["real", "griffin-lim"], default=None)
    parser.add_argument("--like", default=None, help="With --ceiling: only the utterances synthesised in this dir.")
    args = parser.parse_args()
    pipeline = load_model(args.model)
    pairs = pairs_of(read_data_dir(args.data), args.voices, args.per_voice, args.unrelated)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.ceiling:
        targets = [t for t, _ in pairs if not args.like or os.path.exists(os.path.join(args.like, f"{t.utt_id}.wav"))]
        write_ceiling(pipeline, targets, args.ceiling, args.out_dir)
        return
    start = time.time()
    results = pipeline.synthesize([(t.utt_id, t.text) for t, _ in pairs], reference=[r.audio for _, r in pairs],
                                  progress=True)
    wall = time.time() - start
    audio = 0.0
    for r in results:
        if r.error:
            print(f"synthesize_set: {r.id}: {r.error}")
            continue
        audio += len(r.waveform) / r.sample_rate
        save_result(r, os.path.join(args.out_dir, f"{r.id}.wav"), os.path.join(args.out_dir, f"{r.id}.npz"))
    with open(os.path.join(args.out_dir, "pairs"), "w", encoding="utf-8") as handle:
        handle.writelines(f"{t.utt_id} {r.utt_id}\n" for t, r in pairs)
    timing = {"texts": len(pairs), "failed": sum(bool(r.error) for r in results), "wall_seconds": round(wall, 2),
              "audio_seconds": round(audio, 2), "rtf": round(wall / max(audio, 1e-9), 4)}
    with open(os.path.join(args.out_dir, "timing.json"), "w", encoding="utf-8") as handle:
        json.dump(timing, handle)
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
