#!/usr/bin/env python3
"""Score a directory of synthesised ``<utt>.wav`` against the real utterances of a Kaldi data dir, so
any system's synthesis is scored the same way:

* intelligibility: WER of whisper tiny.en (a judge we did not train; ``speechtext[eval]``) on the
  synthesis and on the real audio of the same utterances, side by side; ``--recogniser`` adds our
  own recogniser's greedy WER on both;
* voice: resemblyzer's speaker encoder (bundled weights; ``speechtext[eval]``) embeds every synthesis;
  each voice of the data dir is the mean embedding of its real utterances other than the target, and a
  synthesis passes when it is closer (cosine) to its own voice than to every other voice; the mean rank
  of its own voice among them (1 = nearest) says how near the misses are; and the pass rate against
  9 other voices drawn at random (the exact expectation over all draws: the fewest voices a test of
  voice cloning should tell apart; a data dir of many similar voices makes "every other voice" hard);
* MCD-DTW (dB) against the real utterance: mel-cepstra (the cepstrum of speechtext's 80-band log-mel,
  coefficients 1-24) aligned by dynamic time warping, ``10 / ln 10 * sqrt(2 * sum (c - c')^2)`` per frame;
* ``--plots N``: for the first N utterances a PNG of the reference (from ``<wav-dir>/pairs``), real and
  synthesised spectrograms, with the synthesis's token boundaries (from ``<utt>.npz``).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys

import numpy as np
import torch

from speechtext.audio import AudioError, load_audio
from speechtext.config import MelConfig
from speechtext.data import read_data_dir
from speechtext.mel import LogMel
from speechtext.score import error_rates

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_peers import normalise, whisper_recogniser  # noqa: E402

MEL = LogMel(MelConfig())
VOICE_UTTS = 5


def log_mel(wave: np.ndarray) -> np.ndarray:
    return MEL(torch.from_numpy(wave)[None])[0][0].numpy()  # (T, 80)


def mcd_dtw(synth: np.ndarray, real: np.ndarray, order: int = 24) -> float:
    """Mel-cepstral distortion (dB) between two waveforms after DTW alignment of their mel-cepstra."""
    import librosa
    from scipy.fft import dct

    # The real cepstrum of the mel log-amplitude spectrum (DCT-II over the M bands, / 2M), c1..c_order.
    a, b = (dct(m, type=2, axis=1)[:, 1:order + 1] / (2 * m.shape[1]) for m in (log_mel(synth), log_mel(real)))
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    diff = a[path[:, 0]] - b[path[:, 1]]
    return float(10.0 / np.log(10.0) * np.sqrt(2.0) * np.mean(np.sqrt((diff ** 2).sum(1))))


def wer_of(texts: dict[str, str], refs: dict[str, str]) -> float:
    ids = sorted(texts)
    return round(error_rates([normalise(refs[i]) for i in ids], [normalise(texts[i]) for i in ids])["wer"], 2)


def intelligibility(ids, synth, real, refs, recogniser: str | None, synth_paths: dict, data: dict,
                    use_whisper: bool = True) -> dict:
    out = {}
    try:
        whisper = whisper_recogniser() if use_whisper else None
    except ImportError as exc:
        print(f"eval_synthesis: whisper is skipped ({exc}; pip install 'speechtext[eval]')", file=sys.stderr)
        whisper = None
    if whisper is not None:
        out["whisper_wer_synth"] = wer_of({i: whisper(synth[i]) for i in ids}, refs)
        if real is not None:
            out["whisper_wer_real"] = wer_of({i: whisper(real[i]) for i in ids}, refs)
    if recogniser:
        from speechtext import load_model

        model = load_model(recogniser)
        runs = [("synth", [(i, synth_paths[i]) for i in ids])] + ([("real", [(i, data[i].audio) for i in ids])] if real is not None else [])
        for name, inputs in runs:
            out[f"ours_wer_{name}"] = wer_of({r.id: r.text or "" for r in model.transcribe(inputs)}, refs)
    return out


def real_embeddings(encoder, preprocess_wav, data, utts: list[str], cache: str | None) -> dict:
    """resemblyzer embeddings of real utterances, kept in ``cache`` (.npz) for the next call."""
    known = dict(np.load(cache)) if cache and os.path.exists(cache) else {}
    missing = [u for u in utts if u not in known]
    for u in missing:
        known[u] = encoder.embed_utterance(preprocess_wav(load_audio(data[u].audio), 16000))
    if cache and missing:  # several directories scored in one call share the file: rewrite it only when it grew
        np.savez(cache, **known)
    return known


def chance_nearest_of_draw(own: float, others: list[float], k: int) -> float:
    """The chance that ``own`` beats every score of ``k`` of ``others`` drawn at random without
    replacement: every draw counted, none sampled (the draws that pass take all k from those below)."""
    below = sum(s < own for s in others)
    return math.comb(below, k) / math.comb(len(others), k)


@functools.lru_cache(maxsize=1)
def _voice_encoder(cls):
    return cls("cpu", verbose=False)  # once per process, for every directory scored


def voice_similarity(ids, synth, data, cache: str | None = None) -> dict:
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as exc:
        print(f"eval_synthesis: voice similarity is skipped ({exc}; pip install 'speechtext[eval]')", file=sys.stderr)
        return {}
    encoder = _voice_encoder(VoiceEncoder)
    by_voice: dict[str, list[str]] = {}
    for utt in sorted(data):
        by_voice.setdefault(data[utt].speaker, []).append(utt)
    # A voice is the mean of up to VOICE_UTTS real utterances (plus the targets' own, which are left out).
    keep = {u for utts in by_voice.values() for u in utts[:VOICE_UTTS]} | set(ids)
    embed = real_embeddings(encoder, preprocess_wav, data, sorted(keep), cache)
    voices = sorted(by_voice)
    passed, own, other, ranks, passed_of_9 = [], [], [], [], []
    for i in ids:
        target = data[i]
        centroids = {}
        for v in voices:
            members = [embed[u] for u in by_voice[v] if u in embed and u != i]
            if members:
                c = np.mean(members, 0)
                centroids[v] = c / np.linalg.norm(c)
        e = encoder.embed_utterance(preprocess_wav(synth[i], 16000))
        scores = {v: float(e @ c) for v, c in centroids.items()}
        others = [s for v, s in scores.items() if v != target.speaker]
        best_other = max(others)
        passed.append(scores[target.speaker] > best_other)
        own.append(scores[target.speaker])
        other.append(best_other)
        ranks.append(1 + sum(s > scores[target.speaker] for s in scores.values()))
        if len(others) >= 9:
            passed_of_9.append(chance_nearest_of_draw(scores[target.speaker], others, 9))
    # the rank says how near a miss is: 1 passes, (voices + 1) / 2 is what a voice-blind synthesis gets
    return {"voice_pass_%": round(100.0 * np.mean(passed), 1), "voice_rank_mean": round(float(np.mean(ranks)), 1),
            "voices_compared": len(voices),
            **({"voice_pass_of_10_%": round(100.0 * float(np.mean(passed_of_9)), 1)} if passed_of_9 else {}),
            "cosine_own_voice": round(float(np.mean(own)), 3), "cosine_best_other_voice": round(float(np.mean(other)), 3)}


def plot_example(path: str, reference: np.ndarray, real: np.ndarray, synth: np.ndarray, npz: str | None, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("reference", reference), ("real", real), ("synthesised", synth)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 7))
    for ax, (name, wave) in zip(axes, panels):
        ax.imshow(log_mel(wave).T, origin="lower", aspect="auto", cmap="magma", vmin=-11.5)
        ax.set_ylabel(f"{name}\nmel band")
    if npz and os.path.exists(npz):
        cond = np.load(npz)
        edges = np.cumsum(cond["durations"])
        for token, start, end in zip(cond["tokens"], np.concatenate([[0], edges[:-1]]), edges):
            axes[-1].axvline(start, color="white", lw=0.5)
            axes[-1].text((start + end) / 2, 75, str(token), color="white", ha="center", fontsize=7)
    axes[-1].set_xlabel("frame (10 ms)")
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def score_dir(args, data: dict, wav_dir: str) -> dict:
    """The scores of the ``<utt>.wav`` of ``wav_dir``, written to its ``scores.json`` (or ``--json``)."""
    ids = sorted(f[:-4] for f in os.listdir(wav_dir) if f.endswith(".wav") and f[:-4] in data)
    if not ids:
        sys.exit(f"eval_synthesis: no <utt>.wav of {args.data} in {wav_dir}")
    paths = {i: os.path.join(wav_dir, f"{i}.wav") for i in ids}
    synth, unusable = {}, {}
    for i in ids:  # a synthesis too short (or broken) to judge is reported and left out, not fatal
        try:
            synth[i] = load_audio(paths[i])
        except AudioError as exc:
            unusable[i] = str(exc)
    for i, reason in unusable.items():
        print(f"eval_synthesis: {i} left out of the scores: {reason}", file=sys.stderr)
    ids = [i for i in ids if i in synth]
    if not ids:
        sys.exit(f"eval_synthesis: none of the syntheses in {wav_dir} can be judged (see above)")
    real = {i: load_audio(data[i].audio) for i in ids}
    refs = {i: data[i].text for i in ids}
    result = {"utterances": len(ids), "unusable": len(unusable), **intelligibility(ids, synth, None if args.skip_real else real, refs,
                                        None if args.no_recogniser else args.recogniser, paths, data,
                                        use_whisper=not args.no_whisper),
              **voice_similarity(ids, synth, data, args.voice_cache),
              "mcd_dtw_db": round(float(np.mean([mcd_dtw(synth[i], real[i]) for i in ids])), 2)}
    timing = os.path.join(wav_dir, "timing.json")
    if os.path.exists(timing):
        result["rtf"] = json.load(open(timing, encoding="utf-8"))["rtf"]
    if args.plots:
        pairs = dict(line.split() for line in open(os.path.join(wav_dir, "pairs"), encoding="utf-8"))
        os.makedirs(args.plot_dir, exist_ok=True)
        for i in ids[: args.plots]:
            reference = load_audio(data[pairs[i]].audio) if pairs.get(i) in data else np.zeros(16000, np.float32)
            plot_example(os.path.join(args.plot_dir, f"{i}.png"), reference, real[i], synth[i],
                         os.path.join(wav_dir, f"{i}.npz"), f"{i}: {refs[i]}")
    with open(args.json or os.path.join(wav_dir, "scores.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="Kaldi data dir of the real utterances (text, utt2spk).")
    parser.add_argument("--wav-dir", action="append", required=True,
                        help="<utt>.wav synthesised for utterances of --data (repeatable: the judges load once).")
    parser.add_argument("--recogniser", default=None, help="Also our recogniser's WER (a speechtext model dir).")
    parser.add_argument("--skip-real", action="store_true", help="Judge only the synthesis (the real audio was judged already).")
    parser.add_argument("--no-recogniser", action="store_true", help="Leave our recogniser out (for the ceilings).")
    parser.add_argument("--no-whisper", action="store_true", help="Leave whisper out.")
    parser.add_argument("--voice-cache", default=None, help="An .npz keeping the real utterances' speaker embeddings.")
    parser.add_argument("--plots", type=int, default=0)
    parser.add_argument("--plot-dir", default=None)
    parser.add_argument("--json", default=None, help="Where the scores go (one --wav-dir); default <wav-dir>/scores.json.")
    args = parser.parse_args()
    if args.json and len(args.wav_dir) > 1:
        parser.error("--json names the scores of one --wav-dir; with several each gets <wav-dir>/scores.json")
    data = {u.utt_id: u for u in read_data_dir(args.data)}
    for wav_dir in args.wav_dir:
        print(wav_dir, json.dumps(score_dir(args, data, wav_dir)))


if __name__ == "__main__":
    main()
