"""One-file model archives: :func:`pack_model` (``speechtext pack``) and :func:`open_archive`, which
:func:`speechtext.load_model` and so every CLI verb call on a ``.tar.gz`` / ``.tgz`` / ``.tar`` path.

An archive holds one folder: the model directory's files, ``SHA256SUMS`` (a checksum per file, in
``sha256sum`` format, so ``sha256sum -c`` checks it too) and ``README.md``, a model card (training
data, config, the figures of the run's ``RESULTS.md``). Opening one unpacks it once into the cache
(``$SPEECHTEXT_CACHE``, default ``~/.cache/speechtext``), keyed by the archive's own checksum.
Extraction refuses absolute paths, ``..``, links and special files, and every file must match its
checksum before the model is used.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib

from . import __version__

SUMS_FILE = "SHA256SUMS"
CARD_FILE = "README.md"
SUFFIXES = (".tar.gz", ".tgz", ".tar")


class ArchiveError(ValueError):
    """An archive that cannot be written or trusted; the message names the file."""


def cache_dir(kind: str) -> str:
    """``$SPEECHTEXT_CACHE/<kind>`` (default ``~/.cache/speechtext/<kind>``), created."""
    root = os.environ.get("SPEECHTEXT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "speechtext")
    path = os.path.join(root, kind)
    os.makedirs(path, exist_ok=True)
    return path


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_archive(path: str) -> bool:
    return os.path.isfile(path) and path.endswith(SUFFIXES)


def _find_results(model_dir: str) -> str | None:
    """The run's ``RESULTS.md``: in the model dir or up to three folders above it (a recipe's)."""
    here = os.path.abspath(model_dir)
    for _ in range(4):
        candidate = os.path.join(here, "RESULTS.md")
        if os.path.isfile(candidate):
            return candidate
        here = os.path.dirname(here)
    return None


def model_card(model_dir: str, results: str | None) -> str:
    """A README for the archive: what the model is, what it was trained on, its config and figures."""
    from .checkpoint import META_FILE

    with open(os.path.join(model_dir, META_FILE), encoding="utf-8") as handle:
        meta = json.load(handle)
    with open(os.path.join(model_dir, "config.yaml"), encoding="utf-8") as handle:
        config = handle.read()
    training = meta.get("training", {})
    lines = [f"# speechtext model: {os.path.basename(os.path.abspath(model_dir))}", "",
             f"Packed {datetime.date.today().isoformat()} by speechtext {__version__} (model format "
             f"{meta.get('format_version')}). Load it with `speechtext.load_model(\"<this archive>\")` or pass the "
             "archive to any `speechtext` command in place of a model directory.", "", "## Training", ""]
    if training:
        lines += [f"- {key}: {value}" for key, value in training.items()]
    else:
        lines.append("- not recorded (the model was imported or written before speechtext recorded it)")
    lines += ["", "## Config", "", "```yaml", config.rstrip(), "```", "", "## Results", ""]
    if results:
        with open(results, encoding="utf-8") as handle:
            lines += [f"From `{os.path.relpath(results, model_dir)}` of the run:", "",
                      handle.read().replace("\n# ", "\n### ").replace("\n## ", "\n### ").lstrip("# ")]
    else:
        lines.append("No RESULTS.md was found beside the model (pass --results to add one).")
    return "\n".join(lines) + "\n"


def pack_model(model_dir: str, output: str, results: str | None = None) -> str:
    """Write ``model_dir`` as one archive at ``output`` (``.tar.gz``, ``.tgz`` or ``.tar``) with
    ``SHA256SUMS`` and a model card; ``results`` is a RESULTS.md to quote (found beside the model
    when left out). The model directory is checked first, so a broken one is never packed."""
    from .checkpoint import read_model_dir

    if not output.endswith(SUFFIXES):
        raise ArchiveError(f"{output}: an archive name ends in {', '.join(SUFFIXES)}")
    read_model_dir(model_dir)  # format version and every file present, or a CheckpointError naming it
    files = sorted(f for f in os.listdir(model_dir) if os.path.isfile(os.path.join(model_dir, f))
                   and f not in (SUMS_FILE, CARD_FILE))
    card = model_card(model_dir, results or _find_results(model_dir)).encode()
    sums = "".join(f"{sha256(os.path.join(model_dir, f))}  {f}\n" for f in files)
    sums += f"{hashlib.sha256(card).hexdigest()}  {CARD_FILE}\n"
    root = os.path.basename(os.path.abspath(output)).split(".")[0] or "model"
    tmp = f"{output}.tmp{os.getpid()}"
    with tarfile.open(tmp, "w:gz" if output.endswith(("gz", "tgz")) else "w") as tar:
        for name, data in ((CARD_FILE, card), (SUMS_FILE, sums.encode())):
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mtime, info.mode = len(data), int(datetime.datetime.now().timestamp()), 0o644
            tar.addfile(info, io.BytesIO(data))
        for f in files:
            tar.add(os.path.join(model_dir, f), arcname=f"{root}/{f}", recursive=False)
    os.replace(tmp, output)
    return output


def _safe_members(tar: tarfile.TarFile, path: str):
    """Every member, refusing any that could write outside the target or is not a plain file/folder."""
    members = tar.getmembers()
    for m in members:
        parts = m.name.replace("\\", "/").split("/")
        if m.name.startswith(("/", "\\")) or os.path.isabs(m.name) or ".." in parts or ":" in parts[0]:
            raise ArchiveError(f"{path}: refusing member {m.name!r}: its path leaves the extraction folder")
        if m.issym() or m.islnk():
            raise ArchiveError(f"{path}: refusing member {m.name!r}: a link (to {m.linkname!r}); model archives hold "
                               "plain files only")
        if not (m.isfile() or m.isdir()):
            raise ArchiveError(f"{path}: refusing member {m.name!r}: not a plain file or folder")
    return members


def _verify(folder: str, path: str) -> None:
    sums = os.path.join(folder, SUMS_FILE)
    if not os.path.isfile(sums):
        raise ArchiveError(f"{path}: no {SUMS_FILE} in the archive; it was not written by speechtext pack")
    listed = set()
    with open(sums, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            digest, _, name = line.rstrip("\n").partition("  ")
            target = os.path.join(folder, name)
            if not name or "/" in name or not os.path.isfile(target):
                raise ArchiveError(f"{path}: {SUMS_FILE} line {line_no} lists {name!r}, which the archive lacks")
            if sha256(target) != digest:
                raise ArchiveError(f"{path}: checksum mismatch for {name}: the archive is damaged or was altered; "
                                   "get a fresh copy")
            listed.add(name)
    extra = sorted(set(os.listdir(folder)) - listed - {SUMS_FILE})
    if extra:
        raise ArchiveError(f"{path}: {', '.join(extra)} not covered by {SUMS_FILE}; the archive was altered")


def open_archive(path: str) -> str:
    """Unpack ``path`` (once, into the cache) after checking it; returns the model directory."""
    target = os.path.join(cache_dir("archives"), sha256(path)[:32])
    if os.path.isdir(target):
        return os.path.join(target, os.listdir(target)[0])
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=os.path.dirname(target))
    try:
        try:
            with tarfile.open(path) as tar:
                members = _safe_members(tar, path)
                roots = {m.name.split("/")[0] for m in members}
                if len(roots) != 1:
                    raise ArchiveError(f"{path}: expected one top folder, found {sorted(roots)}")
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **extra)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ArchiveError(f"{path}: cannot read the archive ({exc}); it may be truncated or not a model "
                               "archive") from exc
        _verify(os.path.join(tmp, roots.pop()), path)
        try:
            os.replace(tmp, target)
        except OSError:  # another process unpacked the same archive meanwhile
            if not os.path.isdir(target):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return os.path.join(target, os.listdir(target)[0])
