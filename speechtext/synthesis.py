"""The synthesis head's inference: :func:`synthesize` (text in the voice of a reference recording),
and its inputs: text as recogniser tokens framed by silence units, each tied to the text-encoder
token it lies in. The pipeline exposes it as :meth:`~speechtext.inference.SpeechTextPipeline.synthesize`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from .audio import SAMPLE_RATE, AudioError, AudioSpec, load_audio
from .batching import pad_waveforms
from .config import SynthesisOptions
from .runner import autocast, encode_loaded
from .tokenizer import normalize_text

MAX_TEXT_TOKENS = 64  # the text encoder's input is cut here (TextTokenizer.encode), so longer texts are refused


class SynthesisError(ValueError):
    """Text or a reference that cannot be synthesised; the message names it and says what to do."""


def synthesis_tokens(text: str, tokenizer, text_tokenizer) -> tuple[list[int], list[int]]:
    """``text`` -> ``(tokens, fused_index)``: the recogniser's token ids (characters or word pieces) with
    a silence unit (the word delimiter) at each end, ``(L,)``, and for each the position of the
    text-encoder token its first character lies in (``-1`` for the silence units and spaces), ``(L,)``.
    Characters the recogniser lacks are named."""
    text = normalize_text(text)
    if not text:
        raise SynthesisError("empty text: give words to speak")
    missing = sorted({c for c in text if c != " " and c not in tokenizer.index})
    if missing:
        raise SynthesisError(f"text {text!r} has characters the model cannot speak: {' '.join(missing)}; "
                             "spell them out or remove them")
    encoding = text_tokenizer.backend.encode(text)
    owner = [-1] * len(text)
    for k, ((start, end), special) in enumerate(zip(encoding.offsets, encoding.special_tokens_mask)):
        if not special:
            owner[start:end] = [k] * (end - start)
    silence = tokenizer.index[tokenizer.word_delimiter]
    tokens, index, start = [silence], [-1], 0
    for k, word in enumerate(text.split(" ")):
        if k:
            tokens.append(silence), index.append(-1)
        for piece in tokenizer.pieces(word):  # characters, or word pieces: each lies where its first character does
            tokens.append(tokenizer.index[piece]), index.append(owner[start])
            start += len(piece)
        start += 1
    return tokens + [silence], index + [-1]


def pad_rows(rows: list[list[int]], value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer rows -> ``(padded (B, L), lengths (B,))``."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    out = torch.full((len(rows), int(lengths.max()) if rows else 0), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out, lengths


@dataclass(frozen=True)
class AverageVoice:
    """Several recordings whose voices are averaged: the fused text-over-reference states, the speaker
    vector and the pitch statistics are computed for each and averaged, so no single recording's voice
    is copied. With the training voices it is the average voice, the no-reference baseline of a
    cloning evaluation."""

    references: tuple

    def __post_init__(self):
        if not self.references:
            raise ValueError("AverageVoice needs at least one recording")
        object.__setattr__(self, "references", tuple(self.references))


@dataclass
class SynthesisResult:
    """One text's synthesis: ``waveform`` (float32, ``sample_rate``), the conditioning behind it (``mel``
    ``(T, n_mels)`` natural-log mel frames, ``durations`` in mel frames per entry of ``tokens``, the
    reference's ``speaker`` vector), or ``error`` saying why not."""

    id: str
    text: str
    waveform: np.ndarray | None = field(default=None, repr=False)
    sample_rate: int = SAMPLE_RATE
    mel: np.ndarray | None = field(default=None, repr=False)
    durations: list[int] | None = None
    tokens: list[str] | None = None
    pitch: list[float] | None = None  # F0 in Hz of each token, 0 for unvoiced ones (models with synthesis.pitch)
    speaker: np.ndarray | None = field(default=None, repr=False)
    hop_length: int = 0
    error: str | None = None


def synthesize(pipeline, texts, reference, options: SynthesisOptions | None = None, progress: bool = False,
               **overrides) -> list[SynthesisResult]:
    """Speak each of ``texts`` (strings or ``(id, text)`` pairs) in the voice of ``reference`` (a path,
    :class:`AudioSpec` or :class:`AverageVoice`, or one per text). One result per text, in order; a bad
    text or reference gets ``error`` on its result and the rest are still synthesised."""
    from tqdm import tqdm

    opts = dataclasses.replace(options or SynthesisOptions(), **overrides)
    _check(pipeline, opts)
    if opts.num_threads:
        torch.set_num_threads(opts.num_threads)
    items = [SynthesisResult(*(t if isinstance(t, tuple) else (f"utt{i:04d}", t))) for i, t in enumerate(texts)]
    refs = list(reference) if isinstance(reference, (list, tuple)) else [reference] * len(items)
    if len(refs) != len(items):
        raise ValueError(f"{len(refs)} references for {len(items)} texts; give one, or one per text")
    groups: dict[object, list[int]] = {}
    for i, ref in enumerate(refs):
        groups.setdefault(_reference_key(ref), []).append(i)
    with tqdm(total=len(items), disable=not progress, unit="text") as bar:
        for indices in groups.values():
            try:
                ref = refs[indices[0]]
                encoded = [_reference_frames(pipeline, r, opts)
                           for r in (ref.references if isinstance(ref, AverageVoice) else [ref])]
            except (AudioError, SynthesisError) as exc:
                for i in indices:
                    items[i].error = str(exc)
                bar.update(len(indices))
                continue
            for k in range(0, len(indices), opts.batch_size):
                _synthesize_batch(pipeline, [items[i] for i in indices[k:k + opts.batch_size]], encoded, opts)
                bar.update(len(indices[k:k + opts.batch_size]))
    return items


def _reference_key(ref):
    """Texts with equal keys share one encoding of their reference (segments of one file differ)."""
    if isinstance(ref, AverageVoice):
        return tuple(_reference_key(r) for r in ref.references)
    return (ref.source, ref.start, ref.end) if isinstance(ref, AudioSpec) else str(ref)


def _check(pipeline, opts: SynthesisOptions) -> None:
    if "synthesis" not in pipeline.model.heads:
        raise SynthesisError(f"{pipeline.path}: this model has no synthesis head; train one (train.task: synthesis)")
    if opts.speed <= 0 or opts.batch_size < 1:
        raise ValueError(f"speed must be positive and batch size at least 1 (got {opts.speed}, {opts.batch_size})")
    if opts.precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {opts.precision!r}")


def _reference_frames(pipeline, ref, opts: SynthesisOptions):
    """A usable reference as ``(frames (1, T, H), frame_lengths (1,), waveform (1, S), samples (1,))``, the
    waveform being the encoder's (normalised) input; :class:`SynthesisError` otherwise."""
    spec = ref if isinstance(ref, AudioSpec) else AudioSpec(str(ref))
    wave = load_audio(spec, max_seconds=opts.max_reference_seconds)
    seconds = len(wave) / SAMPLE_RATE
    if seconds < opts.min_reference_seconds:
        raise SynthesisError(f"{spec.source}: the reference is {seconds:.2f} s long; give at least "
                             f"{opts.min_reference_seconds:g} s of the voice")
    if float(np.abs(wave).max()) < 1e-3:
        raise SynthesisError(f"{spec.source}: the reference is silent; give a recording of the voice speaking")
    frames, frame_lengths = encode_loaded(pipeline, [(0, wave)], opts.precision)
    waveform, samples = pad_waveforms([wave], pipeline.config.model.normalize_waveform)
    return frames, frame_lengths, waveform.to(pipeline.device), samples.to(pipeline.device)


def _prepare(pipeline, item: SynthesisResult):
    """``(tokens, fused_index)`` of an item's text, or ``None`` with ``item.error`` set."""
    try:
        tokens, index = synthesis_tokens(item.text, pipeline.tokenizer, pipeline.text_tokenizer)
        count = int(pipeline.text_tokenizer.encode([item.text], max_length=10_000)[1][0])
    except ValueError as exc:  # SynthesisError, TextTokenizerError
        item.error = f"{item.id}: {exc}"
        return None
    if count > MAX_TEXT_TOKENS:
        item.error = f"{item.id}: the text is {count} text-encoder tokens long, at most {MAX_TEXT_TOKENS}; split it"
        return None
    return tokens, index


@torch.inference_mode()
def _synthesize_batch(pipeline, items: list[SynthesisResult], refs: list, opts: SynthesisOptions) -> None:
    model, head = pipeline.model, pipeline.model.heads["synthesis"]
    prepared = [(item, _prepare(pipeline, item)) for item in items]
    prepared = [(item, p) for item, p in prepared if p is not None]
    if not prepared:
        return
    device, batch = pipeline.device, len(prepared)
    tokens, token_lengths = pad_rows([p[0] for _, p in prepared])
    fused_index = pad_rows([p[1] for _, p in prepared], -1)[0]
    text_ids, text_lengths = pipeline.text_tokenizer.encode([item.text for item, _ in prepared])
    fused, speaker, ref_pitch = 0.0, 0.0, 0.0
    for frames, frame_lengths, waveform, samples in refs:  # one reference, or those of an AverageVoice
        with autocast(device, opts.precision):
            f, s, p = model.synthesis_conditioning(frames.expand(batch, -1, -1), frame_lengths.expand(batch),
                                                   text_ids.to(device), text_lengths.to(device),
                                                   waveform.expand(batch, -1), samples.expand(batch))
        fused, speaker = fused + f.float() / len(refs), speaker + s.float()
        ref_pitch = ref_pitch + p / len(refs) if p is not None else None
    speaker = torch.nn.functional.normalize(speaker, dim=-1)
    tokens, token_lengths, fused_index = tokens.to(device), token_lengths.to(device), fused_index.to(device)
    states, log_dur = head.encode_tokens(tokens, token_lengths, fused, fused_index, speaker)
    durations = head.predict_durations(log_dur, token_lengths, opts.speed)
    f0 = frame_f0 = None
    if head.cfg.pitch:
        states, f0, frame_f0 = head.infer_pitch(states, token_lengths, speaker, ref_pitch, durations, opts.pitch_shift)
    hop = head.cfg.mel.hop_length
    limit = int(head.cfg.max_seconds * SAMPLE_RATE / hop)
    keep = []
    for row, (item, _) in enumerate(prepared):
        total = int(durations[row].sum())
        if total > limit or total < 2:  # one frame is no waveform at all
            item.error = (f"{item.id}: the text would last {total * hop / SAMPLE_RATE:.1f} s, over the model's "
                          f"{head.cfg.max_seconds:g} s; split it or raise --speed" if total > limit else
                          f"{item.id}: no speech was predicted for this text")
        else:
            keep.append(row)
    if not keep:
        return
    rows = torch.tensor(keep, device=device)
    mel, post, lengths = head.decode(states[rows], durations[rows], speaker[rows],
                                     frame_f0[rows] if frame_f0 is not None else None)
    waves = vocoder_of(pipeline, opts.griffin_lim_iters)(post, lengths)
    for j, row in enumerate(keep):
        item, n = prepared[row][0], int(lengths[j])
        item.waveform, item.mel, item.hop_length = waves[j], post[j, :n].cpu().numpy(), hop
        item.durations = durations[row, : int(token_lengths[row])].tolist()
        if f0 is not None:
            item.pitch = [round(float(hz), 1) for hz in f0[row, : int(token_lengths[row])]]
        item.tokens = [pipeline.tokenizer.tokens[t] for t in tokens[row, : int(token_lengths[row])].tolist()]
        item.speaker = speaker[row].cpu().numpy()


def vocoder_of(pipeline, griffin_lim_iters: int = 0):
    """The model's vocoder (``griffin_lim_iters`` > 0 overrides the model's count), built once per pipeline."""
    from .mel import LogMel, get_vocoder

    cfg = pipeline.model.heads["synthesis"].cfg
    if griffin_lim_iters:
        cfg = dataclasses.replace(cfg, griffin_lim_iters=griffin_lim_iters)
    key = ("vocoder", cfg.vocoder, cfg.griffin_lim_iters)
    if key not in pipeline.cache:
        pipeline.cache[key] = get_vocoder(cfg.vocoder, LogMel(cfg.mel).to(pipeline.device), cfg)
    return pipeline.cache[key]


def read_texts(path: str, kaldi: bool = False) -> list[tuple[str, str]]:
    """``(id, text)`` pairs of a file with one text per line (ids ``line00001``...) or, with ``kaldi``,
    of a Kaldi ``text`` file (``utt-id text``). Blank lines are skipped in the first form."""
    from .data import read_table

    if kaldi:
        return [(key, rest) for _, key, rest in read_table(path, min_fields=1)]
    with open(path, encoding="utf-8") as handle:
        return [(f"line{n:05d}", line.strip()) for n, line in enumerate(handle, 1) if line.strip()]


def save_result(result: SynthesisResult, wav_path: str, conditioning_path: str | None = None) -> None:
    """Write a result's waveform (16-bit WAV) and, optionally, its conditioning as ``.npz``: ``mel``
    ``(T, n_mels)`` natural-log mel, ``durations`` ``(L,)`` mel frames per entry of ``tokens`` ``(L,)``,
    ``pitch`` ``(L,)`` F0 in Hz per token (0 unvoiced; absent without a pitch predictor), ``speaker``
    ``(S,)``, ``text``, ``sample_rate`` and ``hop_length``."""
    import soundfile as sf

    for path in (wav_path, conditioning_path):
        if path and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(wav_path, result.waveform, result.sample_rate, subtype="PCM_16")
    if conditioning_path:
        pitch = {"pitch": np.asarray(result.pitch, np.float32)} if result.pitch is not None else {}
        np.savez(conditioning_path, mel=result.mel, durations=np.asarray(result.durations, np.int64),
                 tokens=np.asarray(result.tokens), speaker=result.speaker, text=np.asarray(result.text),
                 sample_rate=np.asarray(result.sample_rate), hop_length=np.asarray(result.hop_length), **pitch)
