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
from .models.audio_encoder import frame_hop, frame_shift
from .checkpoint import build_model, read_model_dir, read_text_vocabularies
from .config import CommandOptions, TranscribeOptions
from .align import AlignError, align_words, check_chunking, chunk_windows, join_chunks
from .beam_search import SearchOptions, beam_search
from .decode import ctc_greedy, ctc_prefix_beam_search
from .precision import bf16_supported

DECODERS = ("greedy", "ctc", "attention", "joint")
WHOLE_INPUT_SECONDS = 600.0  # embedding, commands and alignment read an input whole, never in chunks


@dataclass
class Transcript:
    """One input's result: ``text`` is ``None`` and ``error`` says why when the input was bad."""

    id: str
    source: str
    text: str | None = None
    error: str | None = None
    duration: float | None = None
    tokens: list[int] = field(default_factory=list, repr=False)
    words: list | None = None  # list of speechtext.align.Word with --timestamps word (and for chunked inputs)

    def to_dict(self) -> dict:
        out = {"id": self.id, "source": self.source, "text": self.text, "error": self.error, "duration": self.duration}
        if self.words is not None:
            out["words"] = [w.to_dict() for w in self.words]
        return out


class SpeechTextPipeline:
    """A loaded model with its tokenizer and config; what :func:`load_model` returns."""

    def __init__(self, model, tokenizer, config, device: str = "cpu", path: str | None = None, text_tokenizer=None,
                 intents: list[str] | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer, self.config, self.path = tokenizer, config, path
        self.text_tokenizer, self.intents = text_tokenizer, intents
        self._lm_cache = ("", None)  # (path, scorer) of the last external LM used

    def embed_audio(self, inputs, options: TranscribeOptions | None = None, progress: bool = False):
        """Shared-space unit vectors of audio inputs: a list of :class:`~speechtext.crossmodal.AudioEmbedding`."""
        from .crossmodal import embed_audio

        return embed_audio(self, inputs, options, progress)

    def embed_text(self, texts: list[str]):
        """Shared-space unit vectors of texts: ``(N, D)`` numpy array."""
        from .crossmodal import embed_text

        return embed_text(self, texts)

    def classify_command(self, inputs, commands=None, threshold: float | None = CommandOptions.threshold,
                         options: TranscribeOptions | None = None, progress: bool = False,
                         acoustic_weight: float = CommandOptions.acoustic_weight):
        """Best free-text command (zero-shot) or, without ``commands``, the closed-set intent, per input."""
        from .crossmodal import classify_command

        return classify_command(self, inputs, commands, threshold, options, progress, acoustic_weight)

    def search_texts(self, inputs, texts: list[str], top_k: int = 5, **kwargs):
        """Audio -> text search: the best ``top_k`` of ``texts`` per input (see :func:`speechtext.crossmodal.search_texts`)."""
        from .crossmodal import search_texts

        return search_texts(self, inputs, texts, top_k, **kwargs)

    def _autocast(self, precision: str):
        use = precision == "bf16" or (precision == "auto" and bf16_supported(self.device))
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if use else nullcontext()

    def _plan(self, items, specs: list[AudioSpec], opts: TranscribeOptions, chunked: bool = False):
        """Probe durations (bad files fail here, cheaply) and pack the good ones into length-sorted batches.
        Returns ``(batches, long)``: with ``chunked``, inputs over ``chunk_seconds`` go to ``long``
        ``[(index, seconds)]`` (transcribed in chunks); otherwise they are refused."""
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
            if current and durations[current[0]] * (len(current) + 1) > opts.batch_seconds:
                batches.append(current)
                current = []
            current.append(i)
        return batches + ([current] if current else []), long

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
    def _decode(self, loaded, opts: TranscribeOptions, offsets=None):
        """Token ids and (with timestamps or ``offsets``, the chunks' start times) words per loaded input."""
        frames, frame_lengths = self._frames(loaded, opts.precision)
        with self._autocast(opts.precision):
            log_probs = self.model.heads["ctc"](frames)
        blank = self.tokenizer.blank_id
        if opts.decoder == "greedy":
            best = ctc_greedy(log_probs, frame_lengths, blank)
        elif opts.decoder == "ctc":
            best = [list(ctc_prefix_beam_search(lp[:n], blank, opts.beam_size)[0][0]) for lp, n in zip(log_probs, frame_lengths.tolist())]
        else:
            weight = opts.ctc_weight if opts.decoder == "joint" else 0.0
            search = SearchOptions(opts.beam_size, weight, lm_weight=opts.lm_weight if opts.lm else 0.0)
            best = beam_search(self.model, frames, frame_lengths, blank, search, lm=self._lm(opts.lm))
        words = [None] * len(best)
        if opts.timestamps == "word" or offsets is not None:
            hop, shift = frame_hop(self.model.audio_encoder), frame_shift(self.model.audio_encoder)
            for j, (ids, n) in enumerate(zip(best, frame_lengths.tolist())):
                words[j] = self._align(log_probs[j, :n], ids, hop, shift + (offsets[j] if offsets else 0.0))
        return best, words

    def _align(self, log_probs, ids, hop: float, offset: float) -> list:
        try:
            return align_words(log_probs, ids, self.tokenizer, hop, offset)
        except AlignError:  # an attention hypothesis too long for its frames: realign what CTC heard
            return align_words(log_probs, ctc_greedy(log_probs[None], torch.tensor([len(log_probs)]),
                                                     self.tokenizer.blank_id)[0], self.tokenizer, hop, offset)

    def _decode_batch(self, loaded, items, opts: TranscribeOptions) -> None:
        best, words = self._decode(loaded, opts)
        for (i, wave), ids, w in zip(loaded, best, words):
            items[i].tokens, items[i].text, items[i].words = ids, self.tokenizer.decode(ids), w
            items[i].duration = round(len(wave) / SAMPLE_RATE, 3)

    def _transcribe_long(self, item: Transcript, spec: AudioSpec, seconds: float, opts: TranscribeOptions) -> None:
        """One long input in overlapping chunks, a batch of chunks at a time (memory bounded by
        ``batch_seconds``, not by the input's length); words are joined by :func:`join_chunks`."""
        windows = chunk_windows(seconds, opts.chunk_seconds, opts.stride_seconds)
        per_batch = max(1, int(opts.batch_seconds // opts.chunk_seconds))
        pieces = []
        try:
            for k in range(0, len(windows), per_batch):
                group = windows[k:k + per_batch]
                loaded = [(j, load_audio(AudioSpec(spec.source, spec.start + a, spec.start + b)))
                          for j, (a, b, _, _) in enumerate(group)]
                pieces += self._decode(loaded, opts, offsets=[a for a, _, _, _ in group])[1]
        except AudioError as exc:
            item.error = str(exc)
            return
        item.words = join_chunks(pieces, [(a, b) for _, _, a, b in windows])
        item.text = " ".join(w.word for w in item.words)
        item.tokens, item.duration = self.tokenizer.encode(item.text), round(seconds, 3)

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
        self._check_decoder(opts)
        if opts.num_threads:
            torch.set_num_threads(opts.num_threads)
        check_chunking(opts.chunk_seconds, opts.stride_seconds)  # before any input is read
        if opts.timestamps not in ("none", "word"):
            raise ValueError(f"timestamps must be 'none' or 'word', not {opts.timestamps!r}")
        items, specs = _normalise_inputs(inputs, Transcript)
        self._run(items, specs, opts, lambda loaded: self._decode_batch(loaded, items, opts), progress,
                  long=lambda i, seconds: self._transcribe_long(items[i], specs[i], seconds, opts))
        return items

    def _lm(self, path: str):
        """The shallow-fusion scorer of ``path``, loaded once per pipeline."""
        if not path:
            return None
        if self._lm_cache[0] != path:
            from .lm import load_lm

            self._lm_cache = (path, load_lm(path, self.tokenizer))
        return self._lm_cache[1]

    def _check_decoder(self, opts: TranscribeOptions) -> None:
        if opts.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {opts.decoder!r}")
        if opts.beam_size < 1:
            raise ValueError(f"beam size must be at least 1, got {opts.beam_size}")
        if not 0.0 <= opts.ctc_weight <= 1.0:
            raise ValueError(f"ctc weight must be between 0 and 1, got {opts.ctc_weight}")
        if opts.lm and opts.decoder not in ("attention", "joint"):
            raise ValueError("an external LM (--lm) is fused in the attention / joint beam search; add --decoder joint")
        if opts.decoder in ("attention", "joint") and "attention" not in self.model.heads:
            raise ValueError(f"{self.path}: this model has no attention decoder (model.heads has no 'attention'); "
                             "decode with --decoder greedy or ctc, or train with heads [ctc, attention]")

    def _run(self, items, specs, opts: TranscribeOptions, process, progress: bool, long=None) -> None:
        """Length-sorted batches of the good inputs, the next batch's audio decoded in a background
        thread while ``process([(item index, samples), ...])`` runs on the current one; with ``long``,
        ``long(index, seconds)`` takes each input over ``chunk_seconds`` afterwards."""
        from tqdm import tqdm

        batches, long_items = self._plan(items, specs, opts, chunked=long is not None)
        with ThreadPoolExecutor(max_workers=1) as pool, tqdm(total=len(items), disable=not progress, unit="file") as bar:
            pending = pool.submit(self._load, batches[0], items, specs, opts) if batches else None
            for k in range(len(batches)):
                loaded = pending.result()
                pending = pool.submit(self._load, batches[k + 1], items, specs, opts) if k + 1 < len(batches) else None
                if loaded:
                    process(loaded)
                bar.update(len(batches[k]))
            for i, seconds in long_items:
                long(i, seconds)
                bar.update(1)

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
