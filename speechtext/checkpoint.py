"""Checkpoints and model directories.

* A **model directory** holds ``config.yaml`` (the resolved config, plain values), ``tokenizer.json``,
  ``model.safetensors`` and ``speechtext.json`` (format version), and for a command model
  ``text_tokenizer.json``, ``intents.json`` and ``transcript_intents.json``. It alone rebuilds the model.
* A **training checkpoint** (``.pt``) adds optimizer, scheduler, step and RNG state; it holds only
  tensors and plain values and is read with ``torch.load(weights_only=True)``.

Both are written to a temporary name and renamed, so a killed process never leaves a torn file.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import torch
from safetensors.torch import load_file, save_file

from . import __version__
from .config import config_from_saved, config_to_dict, read_yaml, save_config
from .tokenizer import load_tokenizer

FORMAT_VERSION = 1
META_FILE = "speechtext.json"
WEIGHTS_FILE = "model.safetensors"
INTENTS_FILE = "intents.json"


class CheckpointError(ValueError):
    """A checkpoint or model directory that cannot be loaded; the message says why."""


def _fsync_replace(tmp: str, path: str) -> None:
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(state: dict, path: str) -> None:
    """Atomically write a training checkpoint (tensors and plain values only)."""
    state = {**state, "format_version": FORMAT_VERSION}
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(state, tmp)
    _fsync_replace(tmp, path)


def load_checkpoint(path: str) -> dict:
    """Read a training checkpoint without unpickling arbitrary objects."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for torn or foreign files
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc}); it may be truncated or not a speechtext file") from exc
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version}, this speechtext reads format {FORMAT_VERSION}")
    return state


def _umask() -> int:
    # Read by setting it: briefly to the strictest mask, so that a file another thread creates in
    # that moment is kept private rather than opened up.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def save_weights(weights: dict, path: str, metadata: dict | None = None) -> None:
    """Write tensors to a safetensors file readable as the umask allows (safetensors itself writes
    0600, so a model directory copied to a shared disk would be unreadable to the rest of the group)."""
    save_file(weights, path, metadata=metadata)
    os.chmod(path, 0o666 & ~_umask())


def save_model_dir(model, tokenizer, config, path: str, extra: dict | None = None, text_tokenizer=None,
                   intents: list[str] | None = None, transcript_intents=None) -> None:
    """Write a self-contained model directory (replacing ``path`` atomically if it exists);
    ``transcript_intents``: a :class:`~speechtext.intent_text.TranscriptIntents` to save with it."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would outlive the rename
    save_config(config, os.path.join(tmp, "config.yaml"))
    tokenizer.save(tmp)
    if text_tokenizer is not None:
        text_tokenizer.save(tmp)
    if intents:
        with open(os.path.join(tmp, INTENTS_FILE), "w", encoding="utf-8") as handle:
            json.dump(intents, handle, indent=0)
    if transcript_intents is not None:
        transcript_intents.save(tmp)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_weights(weights, os.path.join(tmp, WEIGHTS_FILE), metadata={"format_version": str(FORMAT_VERSION)})
    meta = {"format_version": FORMAT_VERSION, "speechtext_version": __version__, **(extra or {})}
    with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)
    if os.path.exists(path):
        old = f"{path}.old{os.getpid()}"
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def read_model_dir(path: str):
    """Return ``(config, tokenizer, state_dict)`` from a model directory, checking its format version."""
    meta_path = os.path.join(path, META_FILE)
    if not os.path.exists(meta_path):
        raise CheckpointError(f"{path}: not a speechtext model directory (no {META_FILE})")
    with open(meta_path, encoding="utf-8") as handle:
        meta = json.load(handle)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: model format {meta.get('format_version')}, this speechtext reads {FORMAT_VERSION}")
    missing = [f for f in ("config.yaml", "tokenizer.json", WEIGHTS_FILE) if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise CheckpointError(f"{path}: incomplete model directory, {', '.join(missing)} missing; copy the whole "
                              "directory that training wrote (or its packed archive)")
    config_path = os.path.join(path, "config.yaml")
    with open(config_path, encoding="utf-8") as handle:
        config = config_from_saved(read_yaml(handle, config_path), where=config_path)
    return config, load_tokenizer(path), load_file(os.path.join(path, WEIGHTS_FILE))


def read_text_vocabularies(path: str):
    """``(text tokenizer or None, intent labels or None)`` of a model directory."""
    from .text_tokenizer import TEXT_TOKENIZER_FILE, TextTokenizer

    text = TextTokenizer.load(path) if os.path.exists(os.path.join(path, TEXT_TOKENIZER_FILE)) else None
    intents = None
    if os.path.exists(os.path.join(path, INTENTS_FILE)):
        with open(os.path.join(path, INTENTS_FILE), encoding="utf-8") as handle:
            intents = json.load(handle)
    return text, intents


def build_model(config, tokenizer, state_dict=None, text_tokenizer=None, intents: list[str] | None = None):
    """Build a ``SpeechTextModel`` from its config in plain code, then load weights strictly."""
    from .models import SpeechTextModel

    if config.model.text_encoder is not None and text_tokenizer is None:
        raise CheckpointError("the config has a text encoder but no text tokenizer was given")
    model = SpeechTextModel(config.model, tokenizer.vocab_size, tokenizer.blank_id,
                            text_tokenizer.vocab_size if text_tokenizer else 0, intents)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model


def average_state_dicts(paths: list[str]) -> dict:
    """Element-wise mean of the model weights of several training checkpoints (integer buffers from the last)."""
    total, dtypes = None, {}
    for path in paths:
        weights = load_checkpoint(path)["model"]
        if total is None:
            dtypes = {k: v.dtype for k, v in weights.items()}
            total = {k: v.clone().double() if v.is_floating_point() else v.clone() for k, v in weights.items()}
            continue
        for key, value in weights.items():
            total[key] = total[key] + value.double() if value.is_floating_point() else value
    return {k: (v / len(paths)).to(dtypes[k]) if v.is_floating_point() else v for k, v in total.items()}


__all__ = ["save_checkpoint", "load_checkpoint", "save_model_dir", "read_model_dir", "build_model",
           "average_state_dicts", "CheckpointError", "FORMAT_VERSION", "config_to_dict"]
