"""The recognition head's inference: :func:`transcribe` (greedy / CTC beam / attention / joint decoding,
an external LM, word timestamps, long inputs in overlapping chunks). The pipeline exposes it as
:meth:`~speechtext.inference.SpeechTextPipeline.transcribe`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from .align import AlignError, align_words, check_chunking, chunk_windows, join_chunks
from .audio import SAMPLE_RATE, AudioError, AudioSpec, load_audio
from .beam_search import SearchOptions, beam_search
from .config import TranscribeOptions
from .decode import ctc_greedy, ctc_prefix_beam_search
from .runner import normalise_inputs, run_batches

DECODERS = ("greedy", "ctc", "attention", "joint")


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


def transcribe(pipeline, inputs, options: TranscribeOptions | None = None, progress: bool = False,
               **overrides) -> list[Transcript]:
    """Transcribe audio inputs; one :class:`Transcript` per input, in input order (see
    :meth:`speechtext.inference.SpeechTextPipeline.transcribe`)."""
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TranscribeOptions)}
    if unknown:
        raise TypeError(f"transcribe() got unknown option(s) {sorted(unknown)}")
    opts = dataclasses.replace(options or TranscribeOptions(), **overrides)
    check_options(pipeline, opts)
    if opts.num_threads:
        pipeline.set_num_threads(opts.num_threads)
    items, specs = normalise_inputs(inputs, Transcript)

    def process(loaded):
        best, words = decode_loaded(pipeline, loaded, opts)
        for (i, wave), ids, w in zip(loaded, best, words):
            items[i].tokens, items[i].text, items[i].words = ids, pipeline.tokenizer.decode(ids), w
            items[i].duration = round(len(wave) / SAMPLE_RATE, 3)

    run_batches(items, specs, opts, process, progress,
                long=lambda i, seconds: _transcribe_long(pipeline, items[i], specs[i], seconds, opts))
    return items


def check_options(pipeline, opts: TranscribeOptions) -> None:
    """Refuse options that cannot work, before any input is read."""
    if opts.precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {opts.precision!r}")
    if opts.decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {opts.decoder!r}")
    if opts.beam_size < 1:
        raise ValueError(f"beam size must be at least 1, got {opts.beam_size}")
    if not 0.0 <= opts.ctc_weight <= 1.0:
        raise ValueError(f"ctc weight must be between 0 and 1, got {opts.ctc_weight}")
    if not 0.0 <= opts.max_padding <= 1.0:
        raise ValueError(f"max padding must be between 0 and 1, got {opts.max_padding}")
    if opts.lm and opts.decoder not in ("attention", "joint"):
        raise ValueError("an external LM (--lm) is fused in the attention / joint beam search; add --decoder joint")
    if opts.decoder in ("attention", "joint") and "attention" not in pipeline.heads:
        raise ValueError(f"{pipeline.path}: this model has no attention decoder (model.heads has no 'attention'); "
                         "decode with --decoder greedy or ctc, or train with heads [ctc, attention]")
    check_chunking(opts.chunk_seconds, opts.stride_seconds)
    if opts.timestamps not in ("none", "word"):
        raise ValueError(f"timestamps must be 'none' or 'word', not {opts.timestamps!r}")


def _lm(pipeline, path: str):
    """The shallow-fusion scorer of ``path``, loaded once per pipeline."""
    if not path:
        return None
    if pipeline.cache.get("lm_path") != path:
        from .lm import load_lm

        pipeline.cache["lm"], pipeline.cache["lm_path"] = load_lm(path, pipeline.tokenizer), path
    return pipeline.cache["lm"]


@torch.inference_mode()
def decode_loaded(pipeline, loaded, opts: TranscribeOptions, offsets=None):
    """Token ids and (with timestamps or ``offsets``, the chunks' start times) words per loaded input."""
    attention = opts.decoder in ("attention", "joint")
    log_probs, frame_lengths, decoder = pipeline.recognition_outputs(loaded, opts.precision, attention)
    blank = pipeline.tokenizer.blank_id
    if opts.decoder == "greedy":
        best = ctc_greedy(log_probs, frame_lengths, blank)
    elif opts.decoder == "ctc":
        best = [list(ctc_prefix_beam_search(lp[:n], blank, opts.beam_size)[0][0])
                for lp, n in zip(log_probs, frame_lengths.tolist())]
    else:
        weight = opts.ctc_weight if opts.decoder == "joint" else 0.0
        search = SearchOptions(opts.beam_size, weight, lm_weight=opts.lm_weight if opts.lm else 0.0)
        best = beam_search(decoder, log_probs, frame_lengths, blank, search, lm=_lm(pipeline, opts.lm))
    words = [None] * len(best)
    if opts.timestamps == "word" or offsets is not None:
        hop, shift = pipeline.frame_timing()
        for j, (ids, n) in enumerate(zip(best, frame_lengths.tolist())):
            words[j] = _align(pipeline.tokenizer, log_probs[j, :n], ids, hop, shift + (offsets[j] if offsets else 0.0))
    return best, words


def _align(tokenizer, log_probs, ids, hop: float, offset: float) -> list:
    try:
        return align_words(log_probs, ids, tokenizer, hop, offset)
    except AlignError:  # an attention hypothesis too long for its frames: realign what CTC heard
        heard = ctc_greedy(log_probs[None], torch.tensor([len(log_probs)]), tokenizer.blank_id)[0]
        return align_words(log_probs, heard, tokenizer, hop, offset)


def _transcribe_long(pipeline, item: Transcript, spec: AudioSpec, seconds: float, opts: TranscribeOptions) -> None:
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
            pieces += decode_loaded(pipeline, loaded, opts, offsets=[a for a, _, _, _ in group])[1]
    except AudioError as exc:
        item.error = str(exc)
        return
    item.words = join_chunks(pieces, [(a, b) for _, _, a, b in windows])
    item.text = " ".join(w.word for w in item.words)
    item.tokens, item.duration = pipeline.tokenizer.encode(item.text), round(seconds, 3)
