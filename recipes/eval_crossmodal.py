#!/usr/bin/env python3
"""Cross-modal evaluation of a model with a text encoder, on Kaldi data dirs with utt2intent:

* closed-set intent accuracy (sets given with --intent-sets): the default answer (intent head x the
  transcript classifier on what --decoder/--beam/--lm decode), and each source alone,
* zero-shot accuracy: each utterance of --zeroshot-set chooses among 10 phrasings never trained on
  (its own and 9 others of that set),
* audio->text retrieval recall@1/5/10 over the distinct transcripts of --retrieval-sets with the full
  command score (shared-space shortlist of 50, re-scored with fusion + cosine + CTC likelihood), and
  audio->text / text->audio recall of the shared space alone (``space_*``),
* a 2-D (PCA) picture of the shared space: audio coloured by intent family, transcripts as crosses.

Writes ``<model>/../crossmodal.json`` and the PNG; prints a summary.
"""
from __future__ import annotations

import argparse
import json
import os
import random

import numpy as np

import speechtext
from speechtext.config import TranscribeOptions
from speechtext.data import read_data_dir


def intent_accuracy(model, data, options: TranscribeOptions) -> dict:
    """Closed-set intent accuracy: ``intent_acc`` as ``classify_command`` answers by default (the intent
    head and the transcript classifier on what ``options`` decode, multiplied), ``intent_acc_audio``
    from the head alone, and ``intent_acc_transcript`` from the same transcripts alone."""
    inputs, truth = [(u.utt_id, u.audio) for u in data], {u.utt_id: u.intent for u in data}
    both = model.classify_command(inputs, options=options)
    audio = model.classify_command(inputs, options=options, intent_from="audio")
    score = lambda results: 100 * float(np.mean([r.command == truth[r.id] for r in results if r.error is None]))
    out = {"intent_acc": score(both), "intent_acc_audio": score(audio)}
    heard = [r for r in both if r.error is None and r.transcript is not None]
    if heard:
        log_probs = model.transcript_intents.log_probs([r.transcript for r in heard])
        labels = [model.intents[i] for i in log_probs.argmax(-1).tolist()]
        out["intent_acc_transcript"] = 100 * float(np.mean([lab == truth[r.id] for lab, r in zip(labels, heard)]))
    return out


def zeroshot_accuracy(model, data, candidates: int = 10, seed: int = 0, acoustic_weight: float = 1.0) -> float:
    """Distinct transcripts are dealt into groups of ``candidates``; each utterance chooses among its group."""
    texts = sorted({u.text for u in data})
    random.Random(seed).shuffle(texts)
    groups = [texts[i:i + candidates] for i in range(0, len(texts), candidates)]
    if len(groups) > 1 and len(groups[-1]) < candidates:  # top the last group up from the others
        groups[-1] += [t for t in texts if t not in groups[-1]][: candidates - len(groups[-1])]
    correct = []
    for group in groups:
        utts = [u for u in data if u.text in group]
        results = model.classify_command([(u.utt_id, u.audio) for u in utts], commands=group, acoustic_weight=acoustic_weight)
        correct += [r.command == u.text for r, u in zip(results, utts) if r.error is None]
    return 100 * float(np.mean(correct))


def embed_set(model, data) -> tuple[np.ndarray, list]:
    """Shared-space vectors ``(N, D)`` of a data set's readable utterances, and those utterances."""
    audio = model.embed_audio([(u.utt_id, u.audio) for u in data])
    utts = [u for a, u in zip(audio, data) if a.error is None]
    return np.stack([a.vector for a in audio if a.error is None]), utts


def retrieval(vectors: np.ndarray, utts: list, model, ks=(1, 5, 10)) -> dict:
    """Recall@k of the shared space alone: cosine ranking both ways."""
    texts = [u.text for u in utts]
    gallery = sorted(set(texts))
    sims = vectors @ model.embed_text(gallery).T  # (audio, texts)
    truth = np.array([gallery.index(t) for t in texts])
    a2t = np.argsort(-sims, axis=1)
    t2a = np.argsort(-sims.T, axis=1)
    out = {}
    for k in ks:
        out[f"space_a2t_R@{k}"] = 100 * float(np.mean([truth[i] in a2t[i, :k] for i in range(len(texts))]))
        out[f"space_t2a_R@{k}"] = 100 * float(np.mean([(truth[t2a[j, :k]] == j).any() for j in range(len(gallery))]))
    return out


def search_recall(model, utts: list, ks=(1, 5, 10)) -> dict:
    """Audio->text recall@k of ``search_texts`` (shortlist from the space, full command score)."""
    gallery = sorted({u.text for u in utts})
    found = model.search_texts([(u.utt_id, u.audio) for u in utts], gallery, top_k=max(ks))
    hits = [(u.text, r.texts) for u, r in zip(utts, found) if r.error is None]
    return {f"a2t_R@{k}": 100 * float(np.mean([t in best[:k] for t, best in hits])) for k in ks}


def plot_space(vectors: np.ndarray, utts: list, model, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    texts = sorted({u.text for u in utts})
    text_vectors = model.embed_text(texts)
    both = np.concatenate([vectors, text_vectors])
    centre = both.mean(0)
    _, _, axes = np.linalg.svd(both - centre, full_matrices=False)
    xy, txy = (vectors - centre) @ axes[:2].T, (text_vectors - centre) @ axes[:2].T
    families = sorted({(u.intent or "?").split("_")[0] for u in utts})
    fig, ax = plt.subplots(figsize=(7, 6))
    for n, family in enumerate(families):
        rows = [i for i, u in enumerate(utts) if (u.intent or "?").split("_")[0] == family]
        ax.scatter(xy[rows, 0], xy[rows, 1], s=8, color=plt.cm.tab10(n % 10), label=family)
    ax.scatter(txy[:, 0], txy[:, 1], marker="x", s=12, color="black", label="transcripts")
    ax.set_title("shared space (PCA): audio by intent family, transcripts as x")
    ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--intent-sets", default="")
    parser.add_argument("--zeroshot-set", default="")
    parser.add_argument("--retrieval-sets", default="")
    parser.add_argument("--plot", default="")
    parser.add_argument("--decoder", default="greedy", help="decoder of the transcripts that intents are read from")
    parser.add_argument("--beam", type=int, default=TranscribeOptions.beam_size)
    parser.add_argument("--lm", default="")
    args = parser.parse_args()
    options = TranscribeOptions(decoder=args.decoder, beam_size=args.beam, lm=args.lm)
    model = speechtext.load_model(args.model)
    read = lambda name: list(read_data_dir(os.path.join("data", name), check_files=False))
    result = {}
    for name in args.intent_sets.split():
        if model.intents:
            result.update({f"{name}/{k}": v for k, v in intent_accuracy(model, read(name), options).items()})
    if args.zeroshot_set:
        data = read(args.zeroshot_set)
        result[f"{args.zeroshot_set}/zeroshot_acc@10"] = zeroshot_accuracy(model, data)
        result[f"{args.zeroshot_set}/zeroshot_acc@10_no_acoustic"] = zeroshot_accuracy(model, data, acoustic_weight=0)
    for n, name in enumerate(args.retrieval_sets.split()):
        # retrieval is of words: utterances with an empty transcript (a silence class) have nothing to find
        vectors, utts = embed_set(model, [u for u in read(name) if (u.text or "").strip()])
        result.update({f"{name}/{k}": v for k, v in search_recall(model, utts).items()})
        result.update({f"{name}/{k}": v for k, v in retrieval(vectors, utts, model).items()})
        if args.plot and n == 0:  # the first retrieval set's embeddings, computed once for both
            plot_space(vectors, utts, model, args.plot)
    out = os.path.join(os.path.dirname(os.path.abspath(args.model)), "crossmodal.json")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({k: round(v, 2) for k, v in result.items()}, handle, indent=1)
    for key, value in result.items():
        print(f"{key}: {value:.2f}")


if __name__ == "__main__":
    main()
