"""Data preparation for public command corpora, from the layout users have on disk to Kaldi data dirs
(wav.scp, text, utt2spk, spk2utt, utt2intent).

* Fluent Speech Commands: ``<root>/data/{train,valid,test}_data.csv`` with columns
  ``path, speakerId, transcription, action, object, location`` (paths relative to ``<root>``);
  intent = ``action_object_location``.
* Google Speech Commands v2: ``<root>/<word>/<speaker>_nohash_<n>.wav`` with ``validation_list.txt``
  and ``testing_list.txt``; the rest (not ``_background_noise_``) is train; intent = the word.
"""
from __future__ import annotations

import csv
import os

from .audio import AudioSpec
from .data import DataDirError, Utterance, write_data_dir

FSC_SPLITS = {"train": "train_data.csv", "valid": "valid_data.csv", "test": "test_data.csv"}


def _utt(root: str, rel: str, speaker: str, text: str, intent: str, where: str) -> Utterance:
    path = os.path.join(root, rel)
    if not os.path.exists(path):
        raise DataDirError(f"{where}: audio file not found: {path}")
    stem = os.path.splitext(os.path.basename(rel))[0]
    return Utterance(f"{speaker}-{stem}", AudioSpec(os.path.abspath(path)), text, speaker, intent)


def _write(out_dir: str, name: str, utts: list[Utterance]) -> int:
    ids = [u.utt_id for u in utts]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise DataDirError(f"{name}: two files give the utterance id {duplicate!r}")
    write_data_dir(os.path.join(out_dir, name), utts)
    return len(utts)


def prepare_fsc(root: str, out_dir: str) -> dict[str, int]:
    """Fluent Speech Commands -> ``out_dir/{train,valid,test}``; returns utterance counts."""
    counts = {}
    for name, file in FSC_SPLITS.items():
        csv_path = os.path.join(root, "data", file)
        if not os.path.exists(csv_path):
            raise DataDirError(f"{csv_path}: not found; is {root} the Fluent Speech Commands root?")
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"path", "speakerId", "transcription", "action", "object", "location"} - set(reader.fieldnames or [])
            if missing:
                raise DataDirError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
            utts = [_utt(root, row["path"], row["speakerId"], row["transcription"],
                         f"{row['action']}_{row['object']}_{row['location']}".replace(" ", "_"), f"{csv_path}:{n + 2}")
                    for n, row in enumerate(reader)]
        counts[name] = _write(out_dir, name, utts)
    return counts


def _read_list(path: str) -> set[str]:
    if not os.path.exists(path):
        raise DataDirError(f"{path}: not found; is this the Speech Commands v2 root?")
    with open(path, encoding="utf-8") as handle:
        return {line.strip() for line in handle if line.strip()}


def prepare_gsc(root: str, out_dir: str) -> dict[str, int]:
    """Google Speech Commands v2 -> ``out_dir/{train,valid,test}``; returns utterance counts."""
    valid, test = _read_list(os.path.join(root, "validation_list.txt")), _read_list(os.path.join(root, "testing_list.txt"))
    splits = {"train": [], "valid": [], "test": []}
    for word in sorted(os.listdir(root)):
        folder = os.path.join(root, word)
        if not os.path.isdir(folder) or word.startswith("_"):
            continue
        for file in sorted(os.listdir(folder)):
            if not file.endswith(".wav"):
                continue
            rel = f"{word}/{file}"
            speaker = file.split("_nohash_")[0]
            split = "valid" if rel in valid else "test" if rel in test else "train"
            utt = _utt(root, rel, speaker, word.replace("_", " "), word, rel)
            utt.utt_id = f"{speaker}-{word}-{os.path.splitext(file)[0].split('_nohash_')[-1]}"
            splits[split].append(utt)
    return {name: _write(out_dir, name, utts) for name, utts in splits.items()}
