"""Data preparation for public command corpora, from the layout users have on disk to Kaldi data dirs
(wav.scp, text, utt2spk, spk2utt, utt2intent).

* Fluent Speech Commands: ``<root>/data/{train,valid,test}_data.csv`` with columns
  ``path, speakerId, transcription, action, object, location`` (paths relative to ``<root>``);
  intent = ``action_object_location``.
  ``holdout`` > 0 keeps that share of each intent's phrasings out of train/valid; the test utterances
  that use them become ``test_zeroshot`` (commands the model never heard phrased that way).
* Google Speech Commands v2: ``<root>/<word>/<speaker>_nohash_<n>.wav`` with ``validation_list.txt``
  and ``testing_list.txt``; the rest (not ``_background_noise_``) is train; intent = the word
  (``task=35``), or one of the ten command words, ``_unknown_`` or ``_silence_`` (``task=12``: each 10 % of
  a split's command words, as the corpus's own training script: unknown words by a fixed hash, silence
  as one-second clips of ``_background_noise_`` written under ``<out_dir>/silence_wav``). Its test set
  comes from the main archive's testing_list.txt, not the separate v0.02 12-class test archive.

Where a corpus is absent, the error says where to download it (:data:`DOWNLOADS`).
"""
from __future__ import annotations

import csv
import hashlib
import math
import os

import numpy as np
import soundfile as sf

from .audio import AudioSpec, load_audio
from .data import DataDirError, Utterance, write_data_dir

FSC_SPLITS = {"train": "train_data.csv", "valid": "valid_data.csv", "test": "test_data.csv"}
GSC_COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
DOWNLOADS = {
    "fsc": "https://fluent.ai/fluent-speech-commands-a-dataset-for-spoken-language-understanding-research/",
    "gsc": "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
    "librispeech": "https://www.openslr.org/12",
    "ljspeech": "https://keithito.com/LJ-Speech-Dataset/",
    "vctk": "https://datashare.ed.ac.uk/handle/10283/3443",
}


def missing_corpus(corpus: str, root: str, expected: str) -> DataDirError:
    """The error for a corpus directory without the expected layout: what, where, and where to get it."""
    return DataDirError(f"{root}: not a {corpus} directory: expected {expected}. "
                        f"Download the corpus from {DOWNLOADS[corpus]} and pass its directory.")


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` alone (not by Python's per-process hash seed)."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 16**8


def _utt(root: str, rel: str, speaker: str, text: str, intent: str, where: str) -> Utterance:
    path = os.path.join(root, rel)
    if not os.path.exists(path):
        raise DataDirError(f"{where}: audio file not found: {path}")
    stem = os.path.splitext(os.path.basename(rel))[0]
    return Utterance(f"{speaker}-{stem}", AudioSpec(os.path.abspath(path)), text, speaker, intent)


def write_split(out_dir: str, name: str, utts: list[Utterance]) -> int:
    """Write ``out_dir/name`` from ``utts``; two files giving one utterance id is an error. Returns the count."""
    ids = [u.utt_id for u in utts]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise DataDirError(f"{name}: two files give the utterance id {duplicate!r}")
    write_data_dir(os.path.join(out_dir, name), utts)
    return len(utts)


def prepare_fsc(root: str, out_dir: str, holdout: float = 0.0) -> dict[str, int]:
    """Fluent Speech Commands -> ``out_dir/{train,valid,test}`` (+ ``test_zeroshot`` when ``holdout``
    > 0); returns utterance counts."""
    splits = {name: _read_fsc_csv(root, file) for name, file in FSC_SPLITS.items()}
    if holdout > 0:
        held = _held_out_phrasings([u for utts in splits.values() for u in utts], holdout)
        splits["test_zeroshot"] = [u for u in splits["test"] if u.text in held]
        for name in FSC_SPLITS:
            splits[name] = [u for u in splits[name] if u.text not in held]
    return {name: write_split(out_dir, name, utts) for name, utts in splits.items()}


def _read_fsc_csv(root: str, file: str) -> list[Utterance]:
    csv_path = os.path.join(root, "data", file)
    if not os.path.exists(csv_path):
        raise missing_corpus("fsc", root, f"{csv_path} (the Fluent Speech Commands root holds data/*_data.csv and wavs/)")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "speakerId", "transcription", "action", "object", "location"} - set(reader.fieldnames or [])
        if missing:
            raise DataDirError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
        return [_utt(root, row["path"], row["speakerId"], row["transcription"],
                     f"{row['action']}_{row['object']}_{row['location']}".replace(" ", "_"), f"{csv_path}:{n + 2}")
                for n, row in enumerate(reader)]


def _held_out_phrasings(utts: list[Utterance], share: float) -> set[str]:
    """About ``share`` of each intent's distinct phrasings, chosen by a fixed hash; every intent keeps
    at least one phrasing for training."""
    by_intent: dict[str, set[str]] = {}
    for u in utts:
        by_intent.setdefault(u.intent, set()).add(u.text)
    held = set()
    for phrasings in by_intent.values():
        ranked = sorted(phrasings, key=lambda text: stable_fraction(text.lower()))
        held.update(ranked[: min(len(ranked) - 1, round(share * len(ranked)))])
    return held


def _read_list(root: str, name: str) -> set[str]:
    path = os.path.join(root, name)
    if not os.path.exists(path):
        raise missing_corpus("gsc", root, f"{path} (the Speech Commands v2 root holds <word>/<speaker>_nohash_<n>.wav, "
                             "validation_list.txt and testing_list.txt)")
    with open(path, encoding="utf-8") as handle:
        return {line.strip() for line in handle if line.strip()}


def prepare_gsc(root: str, out_dir: str, task: int = 35) -> dict[str, int]:
    """Google Speech Commands v2 -> ``out_dir/{train,valid,test}``; returns utterance counts.

    ``task=35``: every word is its own class. ``task=12``: the ten command words, ``_unknown_`` (every
    other word; its text stays the word spoken) and ``_silence_`` (background noise, empty text)."""
    if task not in (12, 35):
        raise ValueError(f"task must be 12 or 35, got {task}")
    valid, test = _read_list(root, "validation_list.txt"), _read_list(root, "testing_list.txt")
    splits = {"train": [], "valid": [], "test": []}
    for word in sorted(os.listdir(root)):
        folder = os.path.join(root, word)
        if not os.path.isdir(folder) or word.startswith("_"):
            continue
        intent = word if task == 35 or word in GSC_COMMANDS else "_unknown_"
        for file in sorted(os.listdir(folder)):
            if not file.endswith(".wav"):
                continue
            rel = f"{word}/{file}"
            speaker = file.split("_nohash_")[0]
            split = "valid" if rel in valid else "test" if rel in test else "train"
            utt = _utt(root, rel, speaker, word.replace("_", " "), intent, rel)
            utt.utt_id = f"{speaker}-{word}-{os.path.splitext(file)[0].split('_nohash_')[-1]}"
            splits[split].append(utt)
    if not any(splits.values()):
        raise missing_corpus("gsc", root, "<word>/<speaker>_nohash_<n>.wav files")
    if task == 12:
        _balance_12(splits, root, os.path.join(out_dir, "silence_wav"))
    return {name: write_split(out_dir, name, utts) for name, utts in splits.items()}


def _balance_12(splits: dict[str, list[Utterance]], root: str, wav_dir: str) -> None:
    """The 12-class task as the corpus's own training script (TensorFlow's speech_commands train.py)
    builds it: in each split, ``_unknown_`` and ``_silence_`` each get 10 % of the number of command-word
    utterances (rounded up); the unknown ones are a fixed-hash choice of the other words."""
    pools = _silence_pools(root)
    for split, utts in splits.items():
        size = math.ceil(0.1 * sum(u.intent != "_unknown_" for u in utts))
        unknown = sorted((u for u in utts if u.intent == "_unknown_"), key=lambda u: stable_fraction(u.utt_id))
        splits[split] = [u for u in utts if u.intent != "_unknown_"] + unknown[:size]
        splits[split] += _silence_clips(pools[split], wav_dir, size)


def _silence_pools(root: str) -> dict[str, list[tuple[str, np.ndarray]]]:
    """One-second windows (half-second hop) of every ``_background_noise_`` file, its first 80 % for
    train, the next 10 % for valid, the last 10 % for test (no window spans two splits)."""
    noise_dir = os.path.join(root, "_background_noise_")
    if not os.path.isdir(noise_dir):
        raise missing_corpus("gsc", root, f"{noise_dir} (the 12-class task cuts its _silence_ class from it)")
    pools: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "valid": [], "test": []}
    for file in sorted(f for f in os.listdir(noise_dir) if f.endswith(".wav")):
        noise, stem = load_audio(os.path.join(noise_dir, file)), os.path.splitext(file)[0]
        bounds = [0, int(0.8 * len(noise)), int(0.9 * len(noise)), len(noise)]
        for split, start, end in zip(pools, bounds, bounds[1:]):
            for at in range(start, end - 16000 + 1, 8000):
                pools[split].append((f"{stem}-{at // 8000:04d}", noise[at:at + 16000]))
    return pools


def _silence_clips(pool: list[tuple[str, np.ndarray]], wav_dir: str, count: int) -> list[Utterance]:
    """``count`` windows of ``pool`` (a fixed-hash choice), written as wavs under ``wav_dir``."""
    os.makedirs(wav_dir, exist_ok=True)
    chosen = sorted(pool, key=lambda item: stable_fraction(item[0]))[:count]
    utts = []
    for name, samples in chosen:
        path = os.path.join(wav_dir, f"{name}.wav")
        if not os.path.exists(path):
            sf.write(path, np.asarray(samples), 16000, subtype="PCM_16")
        utts.append(Utterance(f"silence-{name}", AudioSpec(os.path.abspath(path)), "", "silence", "_silence_", 1.0))
    return utts
