"""Kaldi data directories: ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, optional ``segments``
and ``utt2intent``, plus ``utt2dur`` as a cache of durations.

Files are read strictly: :func:`validate_data_dir` lists every unsorted, duplicate or dangling entry
with its file and line number; :func:`fix_data_dir` repairs what can be repaired (like Kaldi's
``utils/fix_data_dir.sh``), keeping the utterances that all files agree on.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from .audio import AudioSpec

TABLES = ("wav.scp", "text", "utt2spk", "segments", "utt2intent", "utt2dur")


class DataDirError(ValueError):
    """A malformed data directory; the message lists each problem with file and line."""


@dataclass
class Utterance:
    utt_id: str
    audio: AudioSpec
    text: str | None = None
    speaker: str | None = None
    intent: str | None = None
    duration: float | None = None


@dataclass
class DataDir:
    path: str
    utterances: list[Utterance] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self):
        return iter(self.utterances)


def read_table(path: str, min_fields: int = 2) -> list[tuple[int, str, str]]:
    """Read a Kaldi table as ``(line_number, key, rest)``; blank lines are skipped."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) < min_fields:
                rows.append((number, parts[0], ""))
            else:
                rows.append((number, parts[0], parts[1].strip() if len(parts) > 1 else ""))
    return rows


def write_table(path: str, rows: dict[str, str] | list[tuple[str, str]]) -> None:
    """Write ``key value`` lines sorted by key (C locale order, as Kaldi wants), atomically."""
    items = sorted(rows.items() if isinstance(rows, dict) else rows)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        for key, value in items:
            handle.write(f"{key} {value}\n")
    os.replace(tmp, path)


def _check_table(path: str, problems: list[str], min_fields: int = 2) -> dict[str, tuple[int, str]]:
    name = os.path.basename(path)
    table: dict[str, tuple[int, str]] = {}
    previous = None
    for number, key, rest in read_table(path):
        if rest == "" and min_fields > 1:
            problems.append(f"{name}:{number}: '{key}' has no value")
        if key in table:
            problems.append(f"{name}:{number}: duplicate id '{key}' (first on line {table[key][0]})")
            continue
        if previous is not None and key < previous:
            problems.append(f"{name}:{number}: '{key}' is out of order (sort with LC_ALL=C sort, or run `speechtext fix-data-dir`)")
        previous = key
        table[key] = (number, rest)
    return table


def _check_speakers(path: str, tables: dict, problems: list[str]) -> None:
    spk2utt_path = os.path.join(path, "spk2utt")
    if "utt2spk" not in tables or not os.path.exists(spk2utt_path):
        return
    expected = defaultdict(set)
    for utt, (_, spk) in tables["utt2spk"].items():
        expected[spk].add(utt)
    actual = {spk: set(rest.split()) for _, spk, rest in read_table(spk2utt_path)}
    if actual != dict(expected):
        problems.append("spk2utt: does not match utt2spk; regenerate it (`speechtext fix-data-dir`)")


def validate_data_dir(path: str, need_text: bool = True, check_files: bool = True) -> list[str]:
    """Return a list of problems (empty when the directory is valid), each naming file and line."""
    problems: list[str] = []
    from . import shards

    if shards.is_shar_dir(path):
        try:
            shards.read_shar_dir(path)
        except DataDirError as exc:
            return [str(exc)]
        return []
    if not os.path.isfile(os.path.join(path, "wav.scp")):
        return [f"{path}: no wav.scp; a data directory needs at least wav.scp (and text for training)"]
    # an empty transcript is allowed (Kaldi's too): silence or noise clips of a command corpus
    tables = {n: _check_table(os.path.join(path, n), problems, min_fields=1 if n == "text" else 2)
              for n in TABLES if os.path.exists(os.path.join(path, n))}
    if need_text and "text" not in tables:
        problems.append(f"{path}: no text file; training and scoring need transcripts")
    recordings = tables["wav.scp"]
    utt_ids = set(tables["segments"]) if "segments" in tables else set(recordings)
    if "segments" in tables:
        for utt, (number, rest) in tables["segments"].items():
            fields = rest.split()
            if len(fields) != 3 or fields[0] not in recordings:
                problems.append(f"segments:{number}: '{utt}' needs '<recording-id> <start> <end>' with a recording in wav.scp")
    for name in ("text", "utt2spk", "utt2intent", "utt2dur"):
        for utt, (number, _) in tables.get(name, {}).items():
            if utt not in utt_ids:
                problems.append(f"{name}:{number}: '{utt}' is not in {'segments' if 'segments' in tables else 'wav.scp'}")
        if name in ("text", "utt2spk") and name in tables:
            missing = sorted(utt_ids - set(tables[name]))
            if missing:
                problems.append(f"{name}: {len(missing)} utterances have no entry, e.g. '{missing[0]}'")
    if check_files:
        for rec, (number, rest) in recordings.items():
            if not rest.endswith("|") and not os.path.exists(_resolve(path, rest)):
                problems.append(f"wav.scp:{number}: '{rec}': file not found: {rest}")
    _check_speakers(path, tables, problems)
    return problems


def _resolve(data_dir: str, location: str) -> str:
    # Kaldi paths are relative to the working directory; we also accept paths relative to the data dir.
    if os.path.isabs(location) or location.endswith("|") or os.path.exists(location):
        return location
    candidate = os.path.join(data_dir, location)
    return candidate if os.path.exists(candidate) else location


def read_data_dir(path: str, need_text: bool = True, check_files: bool = True) -> DataDir:
    """Read and validate a data directory (or a Lhotse Shar dir, :mod:`speechtext.shards`); raise
    :class:`DataDirError` listing every problem."""
    from . import shards

    if shards.is_shar_dir(path):
        return shards.read_shar_dir(path)
    problems = validate_data_dir(path, need_text=need_text, check_files=check_files)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DataDirError(f"{path}: invalid data directory:\n  {shown}\nFix it by hand or with `speechtext fix-data-dir {path}`.")

    def load(name):
        file = os.path.join(path, name)
        return {k: v for _, k, v in read_table(file)} if os.path.exists(file) else {}

    wav, text, spk, intent, dur = (load(n) for n in ("wav.scp", "text", "utt2spk", "utt2intent", "utt2dur"))
    segments = load("segments")
    data = DataDir(path)
    for utt in sorted(segments or wav):
        if segments:
            rec, start, end = segments[utt].split()
            audio = AudioSpec(_resolve(path, wav[rec]), float(start), float(end))
        else:
            audio = AudioSpec(_resolve(path, wav[utt]))
        duration = float(dur[utt]) if utt in dur else None
        data.utterances.append(Utterance(utt, audio, text.get(utt), spk.get(utt), intent.get(utt), duration))
    return data


def fix_data_dir(path: str) -> dict[str, int]:
    """Sort every table, drop duplicates (keeping the first) and entries not present in all tables,
    regenerate ``spk2utt``. Returns how many entries were dropped per file. Originals go to ``.backup/``."""
    present = [n for n in TABLES if os.path.exists(os.path.join(path, n))]
    backup = os.path.join(path, ".backup")
    os.makedirs(backup, exist_ok=True)
    tables = {}
    for name in present:
        rows: dict[str, str] = {}
        for _, key, rest in read_table(os.path.join(path, name)):
            rows.setdefault(key, rest)
        tables[name] = rows
    # With segments, wav.scp is keyed by recording, not utterance, and is kept whole.
    id_tables = [n for n in present if not (n == "wav.scp" and "segments" in present)]
    keep = set.intersection(*(set(tables[n]) for n in id_tables))
    dropped = {}
    for name in present:
        original = os.path.join(path, name)
        os.replace(original, os.path.join(backup, name))
        rows = {k: v for k, v in tables[name].items() if k in keep or name not in id_tables}
        dropped[name] = sum(1 for _ in read_table(os.path.join(backup, name))) - len(rows)
        write_table(original, rows)
    if "utt2spk" in tables:
        write_spk2utt(path, {k: v for k, v in tables["utt2spk"].items() if k in keep})
    return dropped


def write_spk2utt(path: str, utt2spk: dict[str, str]) -> None:
    spk2utt = defaultdict(list)
    for utt, spk in sorted(utt2spk.items()):
        spk2utt[spk].append(utt)
    write_table(os.path.join(path, "spk2utt"), {s: " ".join(u) for s, u in spk2utt.items()})


def write_data_dir(path: str, utterances: list[Utterance]) -> None:
    """Write a data directory (wav.scp, text, utt2spk, spk2utt, utt2intent, utt2dur as available)."""
    os.makedirs(path, exist_ok=True)
    write_table(os.path.join(path, "wav.scp"), {u.utt_id: u.audio.source for u in utterances})
    columns = {"text": "text", "utt2spk": "speaker", "utt2intent": "intent", "utt2dur": "duration"}
    for stale in ("segments", "spk2utt", *columns):  # a previous preparation's tables must not outlive it
        if os.path.exists(os.path.join(path, stale)):
            os.remove(os.path.join(path, stale))
    for name, attr in columns.items():
        rows = {u.utt_id: getattr(u, attr) for u in utterances if getattr(u, attr) is not None}
        if rows:
            write_table(os.path.join(path, name), {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in rows.items()})
    if any(u.speaker for u in utterances):
        write_spk2utt(path, {u.utt_id: u.speaker for u in utterances if u.speaker})
