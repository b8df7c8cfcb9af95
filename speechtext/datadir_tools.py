"""What every recipe does to Kaldi data dirs: combine, subset, split, speed perturbation (Kaldi's 0.9 /
1.0 / 1.1 copies) and duration filtering. They work on the tables themselves (wav.scp, segments, text,
utt2spk, utt2intent, utt2dur), so whatever a corpus's data prep wrote is carried through; spk2utt is
regenerated, and every input is validated first (:func:`speechtext.data.read_data_dir`).
"""
from __future__ import annotations

import os
import random
import shlex

from .data import TABLES, DataDirError, read_data_dir, read_table, write_spk2utt, write_table

Tables = dict[str, dict[str, str]]


def read_tables(path: str) -> Tables:
    """A validated data dir as ``{table name: {key: value}}`` for the tables present; audio paths
    relative to the data dir are made absolute, so they still resolve from the written dir."""
    from .shards import is_shar_dir

    if is_shar_dir(path):
        raise DataDirError(f"{path}: a Lhotse Shar dir; these tools work on Kaldi data dirs (use the dir it was "
                           "converted from, then convert the result again)")
    read_data_dir(path, need_text=False)
    tables = {name: {key: rest for _, key, rest in read_table(os.path.join(path, name), min_fields=1)}
              for name in TABLES if os.path.exists(os.path.join(path, name))}
    tables["wav.scp"] = {k: os.path.abspath(os.path.join(path, v)) if _relative_file(path, v) else v
                         for k, v in tables["wav.scp"].items()}
    return tables


def _relative_file(path: str, location: str) -> bool:
    return (not os.path.isabs(location) and not location.endswith("|") and not os.path.exists(location)
            and os.path.exists(os.path.join(path, location)))


def utterance_ids(tables: Tables) -> list[str]:
    return sorted(tables["segments"] if "segments" in tables else tables["wav.scp"])


def write_tables(path: str, tables: Tables) -> None:
    """Write ``tables`` (and the matching spk2utt) into ``path``, replacing what a previous run left."""
    os.makedirs(path, exist_ok=True)
    for name in (*TABLES, "spk2utt"):
        if os.path.exists(os.path.join(path, name)) and name not in tables:
            os.remove(os.path.join(path, name))
    for name, rows in tables.items():
        write_table(os.path.join(path, name), rows)
    if "utt2spk" in tables:
        write_spk2utt(path, tables["utt2spk"])


def select(tables: Tables, keep: set[str]) -> Tables:
    """The utterances ``keep`` of ``tables``; with segments, the recordings they use."""
    out = {name: {k: v for k, v in rows.items() if k in keep} for name, rows in tables.items() if name != "wav.scp"}
    recordings = {v.split()[0] for v in out["segments"].values()} if "segments" in tables else keep
    out["wav.scp"] = {k: v for k, v in tables["wav.scp"].items() if k in recordings}
    return out


def subset(src: str, dst: str, first: int = 0, last: int = 0, count: int = 0, utt_list: str | None = None,
           seed: int = 0) -> int:
    """Write the first / last / ``count`` random (``seed``) utterances of ``src``, or those listed one
    per line in ``utt_list``, to ``dst``; returns how many."""
    tables = read_tables(src)
    ids = utterance_ids(tables)
    if utt_list:
        with open(utt_list, encoding="utf-8") as handle:
            wanted = {line.split()[0] for line in handle if line.strip()}
        keep = [i for i in ids if i in wanted]
    elif first:
        keep = ids[:first]
    elif last:
        keep = ids[-last:]
    elif count:
        keep = random.Random(seed).sample(ids, min(count, len(ids)))
    else:
        raise ValueError("give one of first, last, count or utt_list")
    write_tables(dst, select(tables, set(keep)))
    return len(keep)


def combine(dst: str, sources: list[str]) -> int:
    """Write the union of ``sources`` to ``dst``; an id in two sources is an error naming both."""
    merged: Tables = {}
    owner: dict[tuple[str, str], str] = {}
    loaded = [(src, read_tables(src)) for src in sources]
    with_segments = {src for src, tables in loaded if "segments" in tables}
    if with_segments and len(with_segments) != len(loaded):
        raise DataDirError(f"cannot combine dirs with segments ({', '.join(sorted(with_segments))}) and without")
    for src, tables in loaded:
        for name, rows in tables.items():
            for key, value in rows.items():
                if (name, key) in owner and merged[name][key] != value:
                    raise DataDirError(f"{src}/{name}: id '{key}' is also in {owner[name, key]} with another value; "
                                       "give the corpora distinct ids (e.g. a prefix) before combining")
                owner[name, key] = src
                merged.setdefault(name, {})[key] = value
    write_tables(dst, merged)
    return len(utterance_ids(merged))


def split(src: str, parts: int) -> list[str]:
    """Split ``src`` into ``src/split<parts>/<1..parts>`` with each speaker's utterances in one part (so
    per-speaker processing stays whole); returns the part directories."""
    tables = read_tables(src)
    ids = utterance_ids(tables)
    speaker_of = tables.get("utt2spk", {})
    by_speaker: dict[str, list[str]] = {}
    for utt in ids:
        by_speaker.setdefault(speaker_of.get(utt, utt), []).append(utt)
    if parts > len(by_speaker):
        raise ValueError(f"{src}: {len(by_speaker)} speakers cannot fill {parts} parts")
    buckets: list[list[str]] = [[] for _ in range(parts)]
    for speaker in sorted(by_speaker, key=lambda s: (-len(by_speaker[s]), s)):  # largest first: even parts
        min(buckets, key=len).extend(by_speaker[speaker])
    out = []
    for n, bucket in enumerate(buckets, 1):
        out.append(os.path.join(src, f"split{parts}", str(n)))
        write_tables(out[-1], select(tables, set(bucket)))
    return out


def speed_perturb(src: str, dst: str, factors: tuple[float, ...] = (0.9, 1.0, 1.1)) -> int:
    """Kaldi's speed perturbation: one copy of ``src`` per factor, ids and speakers prefixed ``sp<f>-``
    (the 1.0 copy keeps its ids), audio through ``sox speed`` (tempo and pitch change together), times
    and durations divided by the factor. Returns the number of utterances written."""
    tables = read_tables(src)
    out: Tables = {}
    for factor in factors:
        prefix = "" if factor == 1.0 else f"sp{factor:g}-"
        for name, rows in tables.items():
            target = out.setdefault(name, {})
            for key, value in rows.items():
                target[prefix + key] = _perturbed(name, value, factor, prefix)
    write_tables(dst, out)
    return len(utterance_ids(out))


def _perturbed(table: str, value: str, factor: float, prefix: str) -> str:
    if not prefix:
        return value
    if table == "wav.scp":
        source = value.rstrip()
        head = f"{source[:-1].rstrip()} | sox -t wav - -t wav -" if source.endswith("|") else f"sox {shlex.quote(source)} -t wav -"
        return f"{head} speed {factor:g} |"
    if table == "utt2spk":
        return prefix + value
    if table == "segments":
        rec, start, end = value.split()
        return f"{prefix}{rec} {float(start) / factor:.3f} {float(end) / factor:.3f}"
    if table == "utt2dur":
        return f"{float(value) / factor:.3f}"
    return value


def filter_duration(src: str, dst: str, min_seconds: float = 0.0, max_seconds: float = float("inf")) -> tuple[int, int]:
    """Keep the utterances of ``src`` lasting ``min_seconds``..``max_seconds`` (utt2dur, else the file
    headers); returns ``(kept, dropped)``."""
    from .batching import utterance_durations

    data = read_data_dir(src, need_text=False)
    durations = dict(zip((u.utt_id for u in data), utterance_durations(data)))
    keep = {utt for utt, seconds in durations.items() if min_seconds <= seconds <= max_seconds}
    tables = read_tables(src)
    tables["utt2dur"] = {utt: f"{seconds:.3f}" for utt, seconds in durations.items()}
    write_tables(dst, select(tables, keep))
    return len(keep), len(durations) - len(keep)
