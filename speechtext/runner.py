"""The batch runner below every head's inference: inputs → length-sorted batches → encoder frames.

Every head (recognition, commands and the shared space, alignment, synthesis) runs its inputs through
:func:`run_batches`: durations are probed first (a bad file fails there, cheaply, as an error on its
own result), the good inputs are packed into batches sorted by length so that they carry little
padding, and the next batch's audio is decoded in a background thread while the model runs on the
current one. A head supplies only ``process(loaded)``; it never imports another head's module.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import torch

from .audio import AudioError, AudioSpec, load_audio, probe_duration
from .batching import pad_waveforms
from .config import TranscribeOptions
from .precision import OneDNNLinear, bf16_supported, onednn_linear_preferred

WHOLE_INPUT_SECONDS = 600.0  # embedding, commands and alignment read an input whole, never in chunks


def normalise_inputs(inputs, result_type) -> tuple[list, list[AudioSpec]]:
    """``inputs`` (paths, :class:`AudioSpec` or ``(id, path-or-spec)`` pairs) → one ``result_type(id,
    source)`` per input and its spec, in input order; the id defaults to the file's stem."""
    items, specs = [], []
    for entry in inputs:
        utt_id, spec = entry if isinstance(entry, tuple) else (None, entry)
        spec = spec if isinstance(spec, AudioSpec) else AudioSpec(str(spec))
        if utt_id is None:
            utt_id = os.path.splitext(os.path.basename(spec.source))[0]
        items.append(result_type(utt_id, spec.source))
        specs.append(spec)
    return items, specs


def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``precision`` bf16, or auto where the device has native bf16. Otherwise fp32:
    on a CPU where oneDNN's GEMM is the faster one (AMD with AVX-512), linear layers run there."""
    use = precision == "bf16" or (precision == "auto" and bf16_supported(device))
    if use:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return OneDNNLinear() if device.type == "cpu" and onednn_linear_preferred() else nullcontext()


@torch.inference_mode()
def encode_loaded(pipeline, loaded, precision: str):
    """Encoder frames of loaded inputs ``[(index, samples), ...]``: ``(frames (B, T, H) float32,
    frame_lengths (B,))``. The last batch's are remembered, so that two heads reading one batch
    (intents from the audio and the transcript) run the encoder once."""
    last = pipeline.cache.get("encoded")
    if last is not None and last[0] is loaded and last[1] == precision:
        return last[2]
    waveforms, lengths = pad_waveforms([wave for _, wave in loaded], pipeline.config.model.normalize_waveform)
    with autocast(pipeline.device, precision):
        frames, frame_lengths = pipeline.model.encode(waveforms.to(pipeline.device), lengths.to(pipeline.device))
    pipeline.cache["encoded"] = (loaded, precision, (frames.float(), frame_lengths))
    return pipeline.cache["encoded"][2]


def plan_batches(items, specs: list[AudioSpec], opts: TranscribeOptions, chunked: bool = False):
    """Probe durations and pack the good inputs into length-sorted batches of at most
    ``opts.batch_seconds`` (padded), each input at least ``1 - opts.max_padding`` of its batch's
    longest. Returns ``(batches, long)``: with ``chunked``, inputs over
    ``chunk_seconds`` go to ``long`` ``[(index, seconds)]``; otherwise they are refused."""
    durations, long = {}, []
    for i, (item, spec) in enumerate(zip(items, specs)):
        try:
            seconds = probe_duration(spec)
        except AudioError as exc:
            item.error = str(exc)
            continue
        limit = opts.max_seconds if chunked else min(opts.max_seconds, WHOLE_INPUT_SECONDS)
        if seconds > limit:  # refused before it is decoded into memory
            item.error = (f"{spec.source}: {seconds:.1f} s is longer than the limit of {limit:.0f} s; split it"
                          + (" or raise --max-seconds" if chunked else " (this reads an input whole)"))
        elif chunked and seconds > opts.chunk_seconds:
            long.append((i, seconds))
        else:
            durations[i] = seconds
    order = sorted(durations, key=durations.get, reverse=True)
    batches, current = [], []
    for i in order:
        longest = durations[current[0]] if current else 0.0
        if current and (longest * (len(current) + 1) > opts.batch_seconds
                        or durations[i] < (1.0 - opts.max_padding) * longest):
            batches.append(current)
            current = []
        current.append(i)
    return batches + ([current] if current else []), long


def _load(indices, items, specs, opts: TranscribeOptions) -> list[tuple[int, object]]:
    loaded = []
    for i in indices:
        try:
            loaded.append((i, load_audio(specs[i], max_seconds=opts.max_seconds)))
        except AudioError as exc:
            items[i].error = str(exc)
    return loaded


def run_batches(items, specs, opts: TranscribeOptions, process, progress: bool = False, long=None) -> None:
    """Call ``process([(item index, samples), ...])`` on each length-sorted batch of the good inputs,
    the next batch's audio decoded in a background thread meanwhile; with ``long``,
    ``long(index, seconds)`` takes each input over ``chunk_seconds`` afterwards. Bad inputs get
    ``error`` set on their item and are skipped."""
    from tqdm import tqdm

    batches, long_items = plan_batches(items, specs, opts, chunked=long is not None)
    with ThreadPoolExecutor(max_workers=1) as pool, tqdm(total=len(items), disable=not progress, unit="file") as bar:
        pending = pool.submit(_load, batches[0], items, specs, opts) if batches else None
        for k in range(len(batches)):
            loaded = pending.result()
            pending = pool.submit(_load, batches[k + 1], items, specs, opts) if k + 1 < len(batches) else None
            if loaded:
                process(loaded)
            bar.update(len(batches[k]))
        for i, seconds in long_items:
            long(i, seconds)
            bar.update(1)
