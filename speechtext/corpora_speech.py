"""Data preparation for read-speech corpora (recognition and synthesis), from the layout users have on
disk to Kaldi data dirs (wav.scp, text, utt2spk, spk2utt).

* LibriSpeech: ``<root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac`` with one
  ``<speaker>-<chapter>.trans.txt`` per chapter (``ID TEXT`` lines, upper case). Subset
  ``train-clean-100`` becomes the data dir ``train_clean_100``.
* LJSpeech-1.1: ``<root>/metadata.csv`` (``id|raw text|normalised text``, no quoting) and
  ``<root>/wavs/<id>.wav`` (22.05 kHz, one speaker). No official split: the last 500 utterances are dev
  (250) and test (250), as ESPnet's ljspeech recipe does; the normalised text is used.
* VCTK 0.92: ``<root>/wav48_silence_trimmed/<spk>/<spk>_<n>_mic1.flac`` and ``<root>/txt/<spk>/<spk>_<n>.txt``
  (VCTK 0.80's ``wav48/<spk>/<spk>_<n>.wav`` is read too). The 11 speakers YourTTS held out are the
  test voices (unseen in training); every 50th utterance of the others is dev (a speaker with fewer than
  50 gives its last). Recordings without a
  transcript (all of p315, a few others) are left out and counted.
"""
from __future__ import annotations

import csv
import os

from .audio import AudioSpec
from .corpora import missing_corpus, write_split
from .data import DataDirError, Utterance

LIBRISPEECH_SUBSETS = ["train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
                       "test-clean", "test-other"]
# YourTTS (Casanova et al., 2022), section 3: VCTK speakers kept out of training for zero-shot evaluation
VCTK_TEST_SPEAKERS = ["p225", "p234", "p238", "p245", "p248", "p261", "p294", "p302", "p326", "p335", "p347"]


def prepare_librispeech(root: str, out_dir: str, subsets: list[str]) -> dict[str, int]:
    """LibriSpeech ``subsets`` (e.g. ``["train-clean-100", "dev-clean"]``) -> ``out_dir/<subset with _>``."""
    unknown = [s for s in subsets if s not in LIBRISPEECH_SUBSETS]
    if unknown:
        raise ValueError(f"unknown LibriSpeech subset(s) {unknown}; choose from {', '.join(LIBRISPEECH_SUBSETS)}")
    counts = {}
    for subset in subsets:
        folder = os.path.join(root, subset)
        if not os.path.isdir(folder):
            raise missing_corpus("librispeech", root, f"{folder}/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt")
        utts = []
        for speaker in sorted(os.listdir(folder)):
            for chapter in sorted(os.listdir(os.path.join(folder, speaker))):
                utts += _librispeech_chapter(os.path.join(folder, speaker, chapter), speaker, chapter)
        if not utts:
            raise missing_corpus("librispeech", root, f"{folder}/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt")
        counts[subset.replace("-", "_")] = write_split(out_dir, subset.replace("-", "_"), utts)
    return counts


def _librispeech_chapter(folder: str, speaker: str, chapter: str) -> list[Utterance]:
    trans = os.path.join(folder, f"{speaker}-{chapter}.trans.txt")
    if not os.path.exists(trans):
        raise DataDirError(f"{trans}: not found; every LibriSpeech chapter folder has its transcript file")
    utts = []
    with open(trans, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            audio = os.path.join(folder, f"{utt_id}.flac")
            if not os.path.exists(audio):
                raise DataDirError(f"{trans}:{number}: audio file not found: {audio}")
            utts.append(Utterance(utt_id, AudioSpec(os.path.abspath(audio)), text, speaker))
    return utts


def prepare_ljspeech(root: str, out_dir: str, num_dev: int = 250, num_test: int = 250) -> dict[str, int]:
    """LJSpeech-1.1 -> ``out_dir/{train,dev,test}``: dev and test are the last ``num_dev + num_test`` lines."""
    meta = os.path.join(root, "metadata.csv")
    if not os.path.exists(meta):
        raise missing_corpus("ljspeech", root, f"{meta} and {os.path.join(root, 'wavs')}/LJ001-0001.wav ...")
    utts = []
    with open(meta, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if len(row) != 3:
                raise DataDirError(f"{meta}:{number}: expected 'id|text|normalised text', got {len(row)} field(s)")
            audio = os.path.join(root, "wavs", f"{row[0]}.wav")
            if not os.path.exists(audio):
                raise DataDirError(f"{meta}:{number}: audio file not found: {audio}")
            utts.append(Utterance(row[0], AudioSpec(os.path.abspath(audio)), row[2].strip(), "LJ"))
    if len(utts) <= num_dev + num_test:
        raise DataDirError(f"{meta}: {len(utts)} utterances; more than dev + test ({num_dev + num_test}) are needed")
    split = len(utts) - num_dev - num_test
    parts = {"train": utts[:split], "dev": utts[split:split + num_dev], "test": utts[split + num_dev:]}
    return {name: write_split(out_dir, name, part) for name, part in parts.items()}


def prepare_vctk(root: str, out_dir: str, dev_every: int = 50) -> dict[str, int]:
    """VCTK -> ``out_dir/{train,dev,test}`` (test: the YourTTS held-out speakers) and a count of the
    recordings left out for want of a transcript (``no_transcript``)."""
    audio_dir, pattern = _vctk_audio_layout(root)
    splits: dict[str, list[Utterance]] = {"train": [], "dev": [], "test": []}
    no_transcript = 0
    for speaker in sorted(os.listdir(audio_dir)):
        if not os.path.isdir(os.path.join(audio_dir, speaker)):
            continue
        names = sorted(f for f in os.listdir(os.path.join(audio_dir, speaker)) if f.endswith(pattern))
        transcribed = []
        for name in names:
            txt = os.path.join(root, "txt", speaker, f"{name[: -len(pattern)]}.txt")
            if os.path.exists(txt):
                transcribed.append((name, txt))
        no_transcript += len(names) - len(transcribed)
        for k, (name, txt) in enumerate(transcribed):
            with open(txt, encoding="utf-8", errors="replace") as handle:
                text = " ".join(handle.read().split())
            utt = Utterance(name[: -len(pattern)], AudioSpec(os.path.abspath(os.path.join(audio_dir, speaker, name))),
                            text, speaker)
            # every dev_every-th utterance is dev; a speaker with fewer still gives its last one
            last = k == len(transcribed) - 1 and len(transcribed) < dev_every
            split = "test" if speaker in VCTK_TEST_SPEAKERS else "dev" if k % dev_every == dev_every - 1 or last else "train"
            splits[split].append(utt)
    if not splits["train"]:
        raise missing_corpus("vctk", root, f"{audio_dir}/<speaker>/<speaker>_<n>{pattern} with {root}/txt/<speaker>/<speaker>_<n>.txt")
    counts = {name: write_split(out_dir, name, utts) for name, utts in splits.items()}
    return {**counts, "no_transcript": no_transcript}


def _vctk_audio_layout(root: str) -> tuple[str, str]:
    """(audio folder, file suffix) of VCTK 0.92 (first microphone) or 0.80."""
    for folder, suffix in (("wav48_silence_trimmed", "_mic1.flac"), ("wav48", ".wav")):
        if os.path.isdir(os.path.join(root, folder)):
            return os.path.join(root, folder), suffix
    raise missing_corpus("vctk", root, f"{root}/wav48_silence_trimmed/<speaker>/<speaker>_<n>_mic1.flac (VCTK 0.92) "
                         f"or {root}/wav48/<speaker>/<speaker>_<n>.wav (0.80), and {root}/txt/")
