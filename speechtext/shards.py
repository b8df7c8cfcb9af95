"""Sharded training data in Lhotse's Shar format (``speechtext[lhotse]``): for corpora that do not fit one
disk as loose files, or that a cluster reads faster as a few large files.

A Shar directory holds ``cuts.NNNNNN.jsonl.gz`` (one JSON line per utterance: id, duration, text, speaker,
and the intent in the supervision's ``custom``) beside ``recording.NNNNNN.tar`` (the utterance's audio as
``<id>.flac`` members). Why Shar rather than WebDataset: the metadata lives outside the audio tars, so the
durations that plan the batches are read without touching audio, and lhotse imports/exports Kaldi dirs and
is what icefall and k2 users have already.

Reading: :func:`read_shar_dir` lists the cuts through lhotse and points each utterance at its flac member
inside the uncompressed tar (``<tar>:<offset>:<size>``, read in place by :func:`speechtext.audio.load_audio`).
Training from a Shar dir is then the same run as from the Kaldi dir it came from: the same utterances and
durations, so the same global batches, and the same samples (16-bit flac of the 16 kHz audio that training
reads; a 16-bit 16 kHz source round-trips exactly). Every process reads only the audio of its own share.
"""
from __future__ import annotations

import glob
import io
import json
import os
import tarfile

import soundfile as sf

from .audio import SAMPLE_RATE, AudioSpec, load_audio
from .data import DataDir, DataDirError, Utterance, read_data_dir

INDEX = "speechtext_index.json"  # member offsets of every tar, written once (a header scan) and reused


def is_shar_dir(path: str) -> bool:
    return os.path.isdir(path) and bool(glob.glob(os.path.join(path, "cuts.*.jsonl.gz")))


def _lhotse():
    try:
        import lhotse
    except ImportError as exc:
        raise DataDirError("Lhotse Shar data needs lhotse: pip install 'speechtext[lhotse]'") from exc
    return lhotse


def kaldi_to_shar(data_dir: str, out_dir: str, shard_size: int = 1000, progress: bool = True) -> int:
    """Write the (validated) Kaldi data dir ``data_dir`` as a Shar dir ``out_dir``: every utterance's
    16 kHz mono audio (segments cut, other rates resampled) as 16-bit flac, ``shard_size`` utterances per
    shard. Returns the number of utterances."""
    from lhotse import MonoCut, Recording, SupervisionSegment
    from lhotse.audio.source import AudioSource
    from lhotse.shar import SharWriter
    from tqdm import tqdm

    _lhotse()
    data = read_data_dir(data_dir)
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "cuts.*.jsonl.gz")) + glob.glob(os.path.join(out_dir, "recording.*.tar")):
        os.remove(old)  # an earlier conversion's shards would be read beside the new ones
    with SharWriter(out_dir, fields={"recording": "flac"}, shard_size=shard_size) as writer:
        for utt in tqdm(data.utterances, desc=f"shar {os.path.basename(out_dir)}", unit="utt", disable=not progress):
            samples = load_audio(utt.audio)
            encoded = io.BytesIO()
            sf.write(encoded, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            seconds = len(samples) / SAMPLE_RATE
            recording = Recording(id=utt.utt_id, sources=[AudioSource(type="memory", channels=[0], source=encoded.getvalue())],
                                  sampling_rate=SAMPLE_RATE, num_samples=len(samples), duration=seconds)
            supervision = SupervisionSegment(id=utt.utt_id, recording_id=utt.utt_id, start=0.0, duration=seconds,
                                             text=utt.text, speaker=utt.speaker,
                                             custom={"intent": utt.intent} if utt.intent else None)
            writer.write(MonoCut(id=utt.utt_id, start=0.0, duration=seconds, channel=0, recording=recording,
                                 supervisions=[supervision]))
    _write_index(out_dir)
    return len(data.utterances)


def _tar_stamp(tar: str) -> list:
    stat = os.stat(tar)
    return [stat.st_size, stat.st_mtime_ns]


def _write_index(path: str) -> dict:
    """Member offsets of every tar, keyed by file name, each with the (size, mtime) it was scanned at.
    Written beside the shards when the directory is writable (one process at a time replaces it
    atomically); kept in memory otherwise."""
    index = {}
    for tar in sorted(glob.glob(os.path.join(path, "recording.*.tar"))):
        try:
            with tarfile.open(tar) as handle:  # headers only: members are skipped over, not read
                members = {m.name: [m.offset_data, m.size] for m in handle.getmembers() if m.name.endswith(".flac")}
        except (tarfile.TarError, OSError) as exc:
            raise DataDirError(f"{tar}: cannot read the shard ({exc}); it is truncated or not a tar, convert it again") from exc
        index[os.path.basename(tar)] = {"stamp": _tar_stamp(tar), "members": members}
    tmp = os.path.join(path, f"{INDEX}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(index, handle)
        os.replace(tmp, os.path.join(path, INDEX))
    except OSError:  # a read-only copy of the shards: scan again next time
        pass
    return index


def _load_index(path: str) -> dict:
    """The saved index when every tar still has the size and mtime it was scanned at, else a new scan."""
    try:
        index = json.load(open(os.path.join(path, INDEX), encoding="utf-8"))
    except (OSError, ValueError):
        return _write_index(path)
    tars = {os.path.basename(t): t for t in glob.glob(os.path.join(path, "recording.*.tar"))}
    if set(index) != set(tars) or any(index[name].get("stamp") != _tar_stamp(t) for name, t in tars.items()):
        return _write_index(path)
    return index


def read_shar_dir(path: str) -> DataDir:
    """The utterances of a Shar dir, in id order as a Kaldi dir's, their audio inside the shards."""
    lhotse = _lhotse()
    index = _load_index(path)
    cut_files = sorted(glob.glob(os.path.join(path, "cuts.*.jsonl.gz")))
    data = DataDir(path)
    for cut_file in cut_files:
        tar = os.path.basename(cut_file).replace("cuts.", "recording.").replace(".jsonl.gz", ".tar")
        members = index.get(tar, {}).get("members")
        if members is None:
            raise DataDirError(f"{cut_file}: its audio shard {os.path.join(path, tar)} is missing")
        for cut in lhotse.CutSet.from_jsonl_lazy(cut_file):
            if f"{cut.id}.flac" not in members:
                raise DataDirError(f"{cut_file}: utterance {cut.id} has no audio in {tar}")
            offset, size = members[f"{cut.id}.flac"]
            sup = cut.supervisions[0] if cut.supervisions else None
            intent = (sup.custom or {}).get("intent") if sup is not None else None
            data.utterances.append(Utterance(cut.id, AudioSpec(f"{os.path.join(path, tar)}:{offset}:{size}"),
                                             sup.text if sup else None, sup.speaker if sup else None, intent,
                                             float(cut.duration)))
    data.utterances.sort(key=lambda u: u.utt_id)
    ids = [u.utt_id for u in data.utterances]
    duplicate = next((a for a, b in zip(ids, ids[1:]) if a == b), None)
    if duplicate is not None:
        raise DataDirError(f"{path}: utterance {duplicate} is in two shards")
    return data
