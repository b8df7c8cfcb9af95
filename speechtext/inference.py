"""Loading models and transcribing: :func:`load_model` and :meth:`SpeechTextPipeline.transcribe`.

Transcription reads every input's duration first, sorts by length so that batches carry little
padding, decodes the next batch's audio in a background thread while the model runs, and reports a
bad input as an error on its own result instead of stopping the batch.
"""
from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from .audio import SAMPLE_RATE, AudioError, AudioSpec, load_audio, probe_duration
from .batching import pad_waveforms
from .checkpoint import build_model, read_model_dir, read_text_vocabularies
from .config import TranscribeOptions
from .decode import ctc_greedy, ctc_prefix_beam_search


@dataclass
class Transcript:
    """One input's result: ``text`` is ``None`` and ``error`` says why when the input was bad."""

    id: str
    source: str
    text: str | None = None
    error: str | None = None
    duration: float | None = None
    tokens: list[int] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "text": self.text, "error": self.error, "duration": self.duration}


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class SpeechTextPipeline:
    """A loaded model with its tokenizer and config; what :func:`load_model` returns."""

    def __init__(self, model, tokenizer, config, device: str = "cpu", path: str | None = None, text_tokenizer=None,
                 intents: list[str] | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer, self.config, self.path = tokenizer, config, path
        self.text_tokenizer, self.intents = text_tokenizer, intents

    def embed_audio(self, inputs, options: TranscribeOptions | None = None, progress: bool = False):
        """Shared-space unit vectors of audio inputs: a list of :class:`~speechtext.crossmodal.AudioEmbedding`."""
        from .crossmodal import embed_audio

        return embed_audio(self, inputs, options, progress)

    def embed_text(self, texts: list[str]):
        """Shared-space unit vectors of texts: ``(N, D)`` numpy array."""
        from .crossmodal import embed_text

        return embed_text(self, texts)

    def classify_command(self, inputs, commands=None, threshold: float | None = None,
                         options: TranscribeOptions | None = None, progress: bool = False):
        """Best free-text command (zero-shot) or, without ``commands``, the closed-set intent, per input."""
        from .crossmodal import classify_command

        return classify_command(self, inputs, commands, threshold, options, progress)

    def _autocast(self, precision: str):
        use = precision == "bf16" or (precision == "auto" and bf16_supported(self.device))
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if use else nullcontext()

    def _plan(self, items: list[Transcript], specs: list[AudioSpec], opts: TranscribeOptions) -> list[list[int]]:
        """Probe durations (bad files fail here, cheaply) and pack the good ones into length-sorted batches."""
        durations = {}
        for i, (item, spec) in enumerate(zip(items, specs)):
            try:
                seconds = probe_duration(spec)
            except AudioError as exc:
                item.error = str(exc)
                continue
            if seconds > opts.max_seconds:  # refused before it is decoded into memory
                item.error = (f"{spec.source}: {seconds:.1f} s is longer than the limit of {opts.max_seconds:.0f} s; "
                              "split it or raise --max-seconds")
            else:
                durations[i] = seconds
        order = sorted(durations, key=durations.get, reverse=True)
        batches, current = [], []
        for i in order:
            if current and durations[current[0]] * (len(current) + 1) > opts.batch_seconds:
                batches.append(current)
                current = []
            current.append(i)
        return batches + ([current] if current else [])

    @staticmethod
    def _load(indices, items, specs, opts) -> list[tuple[int, object]]:
        loaded = []
        for i in indices:
            try:
                loaded.append((i, load_audio(specs[i], max_seconds=opts.max_seconds)))
            except AudioError as exc:
                items[i].error = str(exc)
        return loaded

    @torch.inference_mode()
    def _decode_batch(self, loaded, items, opts: TranscribeOptions) -> None:
        frames, frame_lengths = self._frames(loaded, opts.precision)
        with self._autocast(opts.precision):
            log_probs = self.model.heads["ctc"](frames)
        blank = self.tokenizer.blank_id
        if opts.decoder == "greedy":
            best = ctc_greedy(log_probs, frame_lengths, blank)
        else:
            best = [list(ctc_prefix_beam_search(lp[:n], blank, opts.beam_size)[0][0]) for lp, n in zip(log_probs, frame_lengths.tolist())]
        for (i, wave), ids in zip(loaded, best):
            items[i].tokens, items[i].text = ids, self.tokenizer.decode(ids)
            items[i].duration = round(len(wave) / SAMPLE_RATE, 3)

    def transcribe(self, inputs, options: TranscribeOptions | None = None, progress: bool = False, **overrides) -> list[Transcript]:
        """Transcribe audio files; returns one :class:`Transcript` per input, in input order.

        ``inputs``: paths, :class:`AudioSpec`, or ``(id, path-or-spec)`` pairs. Bad inputs get
        ``error`` set (naming the file and the problem) and the rest are still transcribed.
        """
        unknown = set(overrides) - {f.name for f in dataclasses.fields(TranscribeOptions)}
        if unknown:
            raise TypeError(f"transcribe() got unknown option(s) {sorted(unknown)}")
        opts = dataclasses.replace(options or TranscribeOptions(), **overrides)
        if opts.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {opts.precision!r}")
        if opts.decoder not in ("greedy", "beam"):
            raise ValueError(f"decoder must be 'greedy' or 'beam', not {opts.decoder!r}")
        if opts.beam_size < 1:
            raise ValueError(f"beam size must be at least 1, got {opts.beam_size}")
        if opts.num_threads:
            torch.set_num_threads(opts.num_threads)
        items, specs = _normalise_inputs(inputs, Transcript)
        self._run(items, specs, opts, lambda loaded: self._decode_batch(loaded, items, opts), progress)
        return items

    def _run(self, items, specs, opts: TranscribeOptions, process, progress: bool) -> None:
        """Length-sorted batches of the good inputs, the next batch's audio decoded in a background
        thread while ``process([(item index, samples), ...])`` runs on the current one."""
        from tqdm import tqdm

        batches = self._plan(items, specs, opts)
        with ThreadPoolExecutor(max_workers=1) as pool, tqdm(total=len(items), disable=not progress, unit="file") as bar:
            pending = pool.submit(self._load, batches[0], items, specs, opts) if batches else None
            for k in range(len(batches)):
                loaded = pending.result()
                pending = pool.submit(self._load, batches[k + 1], items, specs, opts) if k + 1 < len(batches) else None
                if loaded:
                    process(loaded)
                bar.update(len(batches[k]))

    @torch.inference_mode()
    def _frames(self, loaded, precision: str):
        waveforms, lengths = pad_waveforms([wave for _, wave in loaded], self.config.model.normalize_waveform)
        with self._autocast(precision):
            frames, frame_lengths = self.model.encode(waveforms.to(self.device), lengths.to(self.device))
        return frames.float(), frame_lengths


def _normalise_inputs(inputs, result_type) -> tuple[list, list[AudioSpec]]:
    items, specs = [], []
    for entry in inputs:
        utt_id, spec = entry if isinstance(entry, tuple) else (None, entry)
        spec = spec if isinstance(spec, AudioSpec) else AudioSpec(str(spec))
        if utt_id is None:
            utt_id = os.path.splitext(os.path.basename(spec.source))[0]
        items.append(result_type(utt_id, spec.source))
        specs.append(spec)
    return items, specs


def load_model(path: str, device: str = "cpu") -> SpeechTextPipeline:
    """Load a speechtext model directory, or import a Hugging Face ``*ForCTC`` checkpoint (local directory
    or hub id), and return a :class:`SpeechTextPipeline`."""
    from .checkpoint import META_FILE
    from .hf_import import import_hf_ctc

    if os.path.isfile(os.path.join(path, META_FILE)):
        config, tokenizer, weights = read_model_dir(path)
        text_tokenizer, intents = read_text_vocabularies(path)
        model = build_model(config, tokenizer, weights, text_tokenizer=text_tokenizer, intents=intents)
        return SpeechTextPipeline(model, tokenizer, config, device=device, path=path, text_tokenizer=text_tokenizer,
                                  intents=intents)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path}: neither a speechtext model directory nor a Hugging Face checkpoint")
    model, tokenizer, config = import_hf_ctc(path)
    return SpeechTextPipeline(model, tokenizer, config, device=device, path=path)
