#!/usr/bin/env python3
"""Synthesise held-out sentences in held-out voices, each from a reference that is another utterance
of the same voice (never the target itself), for ``eval_synthesis.py`` to score against the real ones.

Targets: ``--per-voice`` utterances of each of at most ``--voices`` speakers of ``--data`` (sorted,
deterministic); a target's reference is the longest other utterance of its voice (commands are short,
and a reference needs a second of the voice): kind ``same``. ``unrelated`` takes the
reference from another voice instead (the floor of the voice-similarity test); ``average`` speaks
every target in the average voice of ``--average-voices`` voices of ``--average-of`` (the training set:
one utterance each, their conditioning averaged), the no-reference baseline. Each ``--out KIND=DIR``
gets ``<utt>.wav`` and ``<utt>.npz`` (conditioning), ``pairs`` (``utt reference-utt``) and
``timing.json`` (wall clock, audio seconds, real-time factor of text -> waveform).

``real`` writes the real target utterances instead, ``griffin-lim`` the real utterances' log-mel
inverted by the model's vocoder: what the judges give the real voice, and the best this vocoder
could give it, on the same sentences. One call makes every kind it is given, loading the model once:

    synthesize_set.py --model exp/tts/final --data data/test --average-of data/train \\
        --out same=synth_same --out unrelated=synth_unrelated --out average=synth_average \\
        --out real=ceiling_real --out griffin-lim=ceiling_griffin-lim
"""
from __future__ import annotations

import argparse
import json
import os
import time

from speechtext import load_model
from speechtext.audio import load_audio, probe_duration
from speechtext.config import SynthesisOptions
from speechtext.data import read_data_dir
from speechtext.synthesis import AverageVoice, save_result


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


def average_voice(data, voices: int, min_seconds: float = SynthesisOptions.min_reference_seconds) -> AverageVoice:
    """The longest utterance of each of ``voices`` voices spread evenly over ``data``'s sorted voices
    (those with an utterance of at least ``min_seconds``, the shortest usable reference)."""
    longest: dict[str, object] = {}
    for utt in data:
        voice, seconds = utt.speaker or utt.utt_id, utt.duration or probe_duration(utt.audio)
        if seconds >= min_seconds and (voice not in longest or seconds > longest[voice][0]):
            longest[voice] = (seconds, utt)
    names = sorted(longest)
    if not names:
        raise SystemExit(f"synthesize_set: no voice has an utterance of {min_seconds:g} s or more to average")
    count = min(voices, len(names))
    return AverageVoice([longest[names[int(k * len(names) / count)]][1].audio for k in range(count)])


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


KINDS = ("same", "unrelated", "average", "real", "griffin-lim")  # in the order they are made


def synthesize_kind(pipeline, data, kind: str, args, out_dir: str) -> set[str]:
    """Synthesise the targets with references of ``kind`` (same, unrelated, average) into ``out_dir``
    with its ``pairs`` and ``timing.json``; returns the ids synthesised."""
    pairs = pairs_of(data, args.voices, args.per_voice, kind == "unrelated")
    if kind == "average":
        average = average_voice(read_data_dir(args.average_of), args.average_voices)
        pairs = [(t, None) for t, _ in pairs]
    start = time.time()
    references = [average if r is None else r.audio for _, r in pairs]
    results = pipeline.synthesize([(t.utt_id, t.text) for t, _ in pairs], reference=references, progress=True)
    wall, audio = time.time() - start, 0.0
    for r in results:
        if r.error:
            print(f"synthesize_set: {r.id}: {r.error}")
            continue
        audio += len(r.waveform) / r.sample_rate
        save_result(r, os.path.join(out_dir, f"{r.id}.wav"), os.path.join(out_dir, f"{r.id}.npz"))
    with open(os.path.join(out_dir, "pairs"), "w", encoding="utf-8") as handle:
        handle.writelines(f"{t.utt_id} {r.utt_id if r else 'average-voice'}\n" for t, r in pairs)
    timing = {"texts": len(pairs), "failed": sum(bool(r.error) for r in results), "wall_seconds": round(wall, 2),
              "audio_seconds": round(audio, 2), "rtf": round(wall / max(audio, 1e-9), 4)}
    with open(os.path.join(out_dir, "timing.json"), "w", encoding="utf-8") as handle:
        json.dump(timing, handle)
    print(kind, json.dumps(timing))
    return {r.id for r in results if not r.error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", action="append", required=True, metavar="KIND=DIR",
                        help=f"What to write where (repeatable); KIND: {', '.join(KINDS)}.")
    parser.add_argument("--voices", type=int, default=20)
    parser.add_argument("--per-voice", type=int, default=3)
    parser.add_argument("--average-of", default=None, help="The data dir whose voices make the average voice.")
    parser.add_argument("--average-voices", type=int, default=20)
    parser.add_argument("--like", default=None, help="Ceilings of only the utterances synthesised in this dir "
                        "(default: those of the same-voice synthesis when it is made too, else all targets).")
    args = parser.parse_args()
    jobs = dict(item.split("=", 1) for item in args.out if "=" in item)
    if len(jobs) != len(args.out) or set(jobs) - set(KINDS):
        parser.error(f"--out takes KIND=DIR with KIND one of {', '.join(KINDS)}; got {args.out}")
    if "average" in jobs and not args.average_of:
        parser.error("--out average=DIR needs --average-of DATA_DIR (the voices to average)")
    pipeline, data = load_model(args.model), read_data_dir(args.data)
    made = None
    if args.like:
        made = {f[:-4] for f in os.listdir(args.like) if f.endswith(".wav")}
    for kind in [k for k in KINDS if k in jobs]:  # the model and the data are loaded once for every kind
        os.makedirs(jobs[kind], exist_ok=True)
        if kind in ("real", "griffin-lim"):
            targets = [t for t, _ in pairs_of(data, args.voices, args.per_voice, False) if made is None or t.utt_id in made]
            write_ceiling(pipeline, targets, kind, jobs[kind])
        else:
            ids = synthesize_kind(pipeline, data, kind, args, jobs[kind])
            if kind == "same" and not args.like:
                made = ids


if __name__ == "__main__":
    main()
