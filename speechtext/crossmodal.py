"""Cross-modal use of a loaded model: embeddings of the shared space and voice-command recognition.

The functions take a pipeline (:class:`~speechtext.inference.SpeechTextPipeline`, or the ONNX Runtime
one) and reach its model only through four calls: ``audio_outputs``, ``text_outputs``, ``match_scores``
and ``logit_scale``; closed-set intents read from the transcript also decode through
:func:`speechtext.recognition.decode_loaded` and score with the pipeline's ``transcript_intents``.
The pipeline exposes them as ``embed_audio``, ``embed_text``, ``classify_command`` and ``search_texts``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .config import INTENT_SOURCES, CommandOptions, TranscribeOptions
from .models.model import ctc_log_likelihood
from .recognition import check_options, decode_loaded
from .runner import encode_loaded, normalise_inputs, run_batches


class CommandError(ValueError):
    """Unusable commands or a model that cannot recognise commands; the message says what to do."""


@dataclass
class AudioEmbedding:
    id: str
    source: str
    vector: np.ndarray | None = None  # (D,) unit vector of the shared space
    error: str | None = None


@dataclass
class CommandResult:
    """Best command (or intent) for one input. ``score``: probability over the candidates;
    ``similarity``: shared-space cosine of the audio and the best command (what ``threshold`` tests)."""

    id: str
    source: str
    command: str | None = None
    score: float | None = None
    runner_up: str | None = None
    runner_up_score: float | None = None
    similarity: float | None = None
    transcript: str | None = None  # what the recogniser heard, when the closed-set intent read it
    error: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TextMatches:
    """The best texts of a gallery for one audio input, best first, with their full command scores."""

    id: str
    source: str
    texts: list | None = None
    scores: list | None = None
    error: str | None = None


@dataclass
class _Candidates:
    """Candidate texts encoded once for every batch: text-encoder states, shared-space vectors and
    (for the acoustic score) their spelling in the recogniser's tokens."""

    states: torch.Tensor  # (N, L, Ht)
    lengths: torch.Tensor  # (N,)
    vectors: torch.Tensor  # (N, D)
    targets: torch.Tensor | None  # (N, Lc) CTC token ids, padded
    target_lengths: torch.Tensor | None  # (N,)


def _require_text(pipeline) -> None:
    if pipeline.text_tokenizer is None:
        raise CommandError(f"{pipeline.path}: this model has no text encoder; train one with model.text_encoder set")


def embed_audio(pipeline, inputs, options: TranscribeOptions | None = None, progress: bool = False) -> list[AudioEmbedding]:
    """Unit vectors of the shared space for audio inputs; bad inputs get ``error`` instead."""
    _require_text(pipeline)
    opts = options or TranscribeOptions()
    items, specs = normalise_inputs(inputs, AudioEmbedding)

    def process(loaded):
        vectors = pipeline.audio_outputs(loaded, opts.precision, ("vectors",))["vectors"].cpu().numpy()
        for (i, _), vector in zip(loaded, vectors):
            items[i].vector = vector

    run_batches(items, specs, opts, process, progress)
    return items


@torch.inference_mode()
def _text_states(pipeline, texts: list[str]):
    ids, lengths = pipeline.text_tokenizer.encode(texts)
    states, vectors = pipeline.text_outputs(ids.to(pipeline.device), lengths.to(pipeline.device))
    return states, lengths.to(pipeline.device), vectors


def embed_text(pipeline, texts: list[str]) -> np.ndarray:
    """Unit vectors of the shared space for texts: ``(N, D)``."""
    _require_text(pipeline)
    return _text_states(pipeline, list(texts))[2].cpu().numpy()


def check_commands(commands) -> list[str]:
    """Strip and validate candidate commands: none blank, none repeated, at least one."""
    cleaned = [" ".join(str(c).split()) for c in commands]
    if not cleaned:
        raise CommandError("no commands given; pass --commands or --commands-file")
    blank = [i + 1 for i, c in enumerate(cleaned) if not c]
    if blank:
        raise CommandError(f"command {blank[0]} is blank; remove empty lines")
    seen = {}
    for i, c in enumerate(cleaned):
        if c.lower() in seen:
            raise CommandError(f"command {i + 1} ({c!r}) repeats command {seen[c.lower()] + 1}; give each once")
        seen[c.lower()] = i
    return cleaned


def _candidates(pipeline, texts: list[str]) -> _Candidates:
    states, lengths, vectors = _text_states(pipeline, texts)
    targets = target_lengths = None
    if "ctc" in pipeline.heads:
        spelled = [torch.tensor(pipeline.tokenizer.encode(t), dtype=torch.long) for t in texts]
        target_lengths = torch.tensor([len(x) for x in spelled], device=pipeline.device)
        targets = torch.nn.utils.rnn.pad_sequence(spelled, batch_first=True).to(pipeline.device)
    return _Candidates(states, lengths, vectors, targets, target_lengths)


def _audio_needs(acoustic_weight: float, cands: _Candidates) -> tuple[str, ...]:
    return ("vectors", "log_probs") if acoustic_weight and cands.targets is not None else ("vectors",)


@torch.inference_mode()
def _pair_scores(pipeline, audio: dict, cands: _Candidates, pairs, acoustic_weight: float):
    """Full score of (audio, text) ``pairs (P, 2)``: fusion match + scaled cosine + ``acoustic_weight`` x
    the CTC log-likelihood of the text's spelling (what lets unseen phrasings be told apart), ``(P,)``.
    ``audio``: :meth:`audio_outputs` of the batch."""
    frames, lengths, vectors = audio["frames"], audio["lengths"], audio["vectors"]
    scores = pipeline.match_scores(frames, lengths, cands.states, cands.lengths, pairs)
    scores = scores + pipeline.logit_scale() * (vectors[pairs[:, 0]] * cands.vectors[pairs[:, 1]]).sum(-1)
    if "log_probs" in audio:
        scores = scores + acoustic_weight * ctc_log_likelihood(audio["log_probs"], lengths, cands.targets,
                                                               cands.target_lengths, pairs, pipeline.tokenizer.blank_id)
    return scores


def classify_command(pipeline, inputs, commands=None, threshold: float | None = CommandOptions.threshold,
                     options: TranscribeOptions | None = None, progress: bool = False,
                     acoustic_weight: float = CommandOptions.acoustic_weight,
                     intent_from: str = CommandOptions.intent_from) -> list[CommandResult]:
    """Best of free-text ``commands`` (zero-shot) for each input, or, without commands, the
    closed-set intent from ``intent_from`` (see :class:`~speechtext.config.CommandOptions`; the
    transcript is decoded with ``options``). Below ``threshold`` similarity the answer is ``<none>``."""
    _require_text(pipeline)
    opts = options or TranscribeOptions()
    if commands is not None:
        commands = check_commands(commands)
        cands = _candidates(pipeline, commands)
    elif not pipeline.intents:
        raise CommandError(f"{pipeline.path}: the model has no intent classifier; give the candidate commands")
    else:
        intent_from = _intent_source(pipeline, intent_from, opts)
    items, specs = normalise_inputs(inputs, CommandResult)

    def process(loaded):
        if commands is None:
            log_probs, heard = _intent_log_probs(pipeline, loaded, opts, intent_from)
            probs, labels, similarity = log_probs.softmax(-1), pipeline.intents, None
            for (i, _), text in zip(loaded, heard or []):
                items[i].transcript = text
        else:
            audio = pipeline.audio_outputs(loaded, opts.precision, _audio_needs(acoustic_weight, cands))
            batch, count = len(loaded), len(commands)
            pairs = torch.cartesian_prod(torch.arange(batch), torch.arange(count)).to(pipeline.device)
            scores = _pair_scores(pipeline, audio, cands, pairs, acoustic_weight)
            probs, similarity = scores.view(batch, count).softmax(-1), audio["vectors"] @ cands.vectors.t()
            labels = commands
        _fill(items, loaded, probs, labels, similarity, threshold)

    run_batches(items, specs, opts, process, progress)
    return items


def _intent_source(pipeline, intent_from: str, opts: TranscribeOptions) -> str:
    """``intent_from`` checked against what the model has: ``both`` falls back to ``audio`` for a
    model saved without a transcript classifier; ``transcript`` without one is an error."""
    if intent_from not in INTENT_SOURCES:
        raise CommandError(f"intent_from must be one of {', '.join(INTENT_SOURCES)}, not {intent_from!r}")
    if intent_from == "audio":
        return intent_from
    if pipeline.transcript_intents is None or "ctc" not in pipeline.heads:
        if intent_from == "transcript":
            raise CommandError(f"{pipeline.path}: this model has no transcript intent classifier (models trained "
                               "before it existed, or an old ONNX export); use intent_from audio or train again")
        return "audio"
    if pipeline.transcript_intents.intents != list(pipeline.intents):
        raise CommandError(f"{pipeline.path}: the transcript intent classifier's intents differ from the model's")
    check_options(pipeline, opts)
    return intent_from


@torch.inference_mode()
def _intent_log_probs(pipeline, loaded, opts: TranscribeOptions, intent_from: str):
    """``(B, I)`` intent log-posteriors of loaded inputs (the product of the sources', renormalised by
    the caller's softmax), and what the recogniser heard (``None`` from the audio alone)."""
    log_probs, heard = 0.0, None
    if intent_from != "transcript":
        logits = pipeline.audio_outputs(loaded, opts.precision, ("intent_logits",))["intent_logits"]
        log_probs = logits.float().log_softmax(-1)
    if intent_from != "audio":
        best, _ = decode_loaded(pipeline, loaded, opts)
        heard = [pipeline.tokenizer.decode(ids) for ids in best]
        log_probs = log_probs + pipeline.transcript_intents.log_probs(heard).to(pipeline.device)
    return log_probs, heard


def search_texts(pipeline, inputs, texts: list[str], top_k: int = 5, shortlist: int = CommandOptions.shortlist,
                 acoustic_weight: float = CommandOptions.acoustic_weight, options: TranscribeOptions | None = None,
                 progress: bool = False) -> list[TextMatches]:
    """Audio -> text search over a gallery of ``texts``: a ``shortlist`` of texts (half those whose
    spelling the CTC best path holds most of, when the acoustic score is on, the rest the nearest in the
    shared space) is re-scored with the full command score (fusion + cosine + acoustic); the best
    ``top_k`` come back per input. ``shortlist`` >= len(texts) scores every text."""
    _require_text(pipeline)
    if not texts or top_k < 1 or shortlist < 1:
        raise CommandError("search_texts needs at least one text, top_k >= 1 and shortlist >= 1")
    opts = options or TranscribeOptions()
    cands = _candidates(pipeline, list(texts))
    items, specs = normalise_inputs(inputs, TextMatches)

    def process(loaded):
        audio = pipeline.audio_outputs(loaded, opts.precision, _audio_needs(acoustic_weight, cands))
        space = audio["vectors"] @ cands.vectors.t()  # (B, N)
        heard = None
        if "log_probs" in audio:
            heard = spelling_overlap(audio["log_probs"], audio["lengths"], cands.targets, cands.target_lengths,
                                     pipeline.tokenizer.blank_id)
        near = shortlist_texts(space, heard, min(shortlist, len(texts)))  # (B, S)
        rows = torch.arange(len(loaded), device=near.device).repeat_interleave(near.shape[1])
        pairs = torch.stack([rows, near.flatten()], -1)
        scores = _pair_scores(pipeline, audio, cands, pairs, acoustic_weight)
        best = scores.view(near.shape).topk(min(top_k, near.shape[1]), dim=-1)
        for row, (i, _) in enumerate(loaded):
            chosen = near[row, best.indices[row]].tolist()
            items[i].texts = [texts[j] for j in chosen]
            items[i].scores = [round(float(v), 4) for v in best.values[row]]

    run_batches(items, specs, opts, process, progress)
    return items


def _token_bags(sequences: list[list[int]], dim: int = 4096) -> torch.Tensor:
    """Unit vectors ``(N, dim)`` of each token sequence's unigram and bigram counts (hashed)."""
    bags = torch.zeros(len(sequences), dim)
    for row, seq in enumerate(sequences):
        for gram in [(t,) for t in seq] + list(zip(seq, seq[1:])):
            bags[row, hash(gram) % dim] += 1.0  # hash of ints is the same in every process
    return torch.nn.functional.normalize(bags, dim=-1)


def spelling_overlap(log_probs, lengths, targets, target_lengths, blank: int) -> torch.Tensor:
    """How much of each candidate's spelling the CTC best path of each input holds: cosine of their
    token unigram+bigram bags, ``(B, N)`` from ``log_probs (B, T, V)`` with ``lengths (B,)`` and the
    candidates' ``targets (N, L)`` with ``target_lengths (N,)``."""
    best = log_probs.argmax(-1).cpu()
    heard = []
    for row, n in enumerate(lengths.tolist()):
        path = torch.unique_consecutive(best[row, :n])
        heard.append([t for t in path.tolist() if t != blank])
    spelled = [targets[i, :n].tolist() for i, n in enumerate(target_lengths.tolist())]
    return _token_bags(heard) @ _token_bags(spelled).t()


def shortlist_texts(space: torch.Tensor, heard: torch.Tensor | None, k: int) -> torch.Tensor:
    """Indices ``(B, k)`` of the texts to score in full: the ``k // 2`` whose spelling the recogniser
    heard best (``heard (B, N)``, see :func:`spelling_overlap`), then the nearest in the shared space
    ``space (B, N)`` up to ``k``. A shared space that learned little (it varies most between runs)
    then cannot keep the right text out of the shortlist when the recogniser heard it."""
    if heard is None or k < 2:
        return space.topk(k, dim=-1).indices
    by_space = space.argsort(dim=-1, descending=True).tolist()
    by_sound = heard.topk(k // 2, dim=-1).indices.tolist()
    rows = [list(dict.fromkeys(sound + order))[:k] for sound, order in zip(by_sound, by_space)]
    return torch.tensor(rows, dtype=torch.long, device=space.device)


def _fill(items, loaded, probs, labels, similarity, threshold) -> None:
    top = probs.topk(min(2, probs.shape[1]), dim=-1)
    for row, (i, _) in enumerate(loaded):
        best = int(top.indices[row, 0])
        item = items[i]
        item.command, item.score = labels[best], round(float(top.values[row, 0]), 4)
        if probs.shape[1] > 1:
            item.runner_up, item.runner_up_score = labels[int(top.indices[row, 1])], round(float(top.values[row, 1]), 4)
        if similarity is not None:
            item.similarity = round(float(similarity[row, best]), 4)
            if threshold is not None and item.similarity < threshold:
                item.command = "<none>"


def plot_command_attention(pipeline, source: str, command: str, path: str) -> None:
    """Write a PNG of the fusion block's cross-attention (last layer, mean over heads) of ``command``'s
    tokens over the frames of the audio file ``source``."""
    from .audio import load_audio
    from .models.audio_encoder import frame_hop
    from .plots import plot_attention

    _require_text(pipeline)
    frames, lengths = encode_loaded(pipeline, [(0, load_audio(source))], "fp32")
    states, text_lengths, _ = _text_states(pipeline, [command])
    with torch.inference_mode():
        _, maps = pipeline.model.fusion(states, text_lengths, frames, lengths, return_attention=True)
    weights = maps[-1][0].mean(0).cpu().numpy()  # (Q, T)
    ids = pipeline.text_tokenizer.encode([command])[0][0].tolist()
    tokens = [pipeline.text_tokenizer.backend.id_to_token(i) for i in ids]
    plot_attention(weights, tokens, frame_hop(pipeline.model.audio_encoder), path,
                   title=f"{os.path.basename(source)}: {command}")
