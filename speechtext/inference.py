"""Loading models (:func:`load_model`) and the pipeline that a loaded model is: a thin facade.

Each head's inference lives in its own module over one batch runner (:mod:`speechtext.runner`):
recognition in :mod:`speechtext.recognition`, the shared space and commands in
:mod:`speechtext.crossmodal`, forced alignment in :mod:`speechtext.align`. The pipeline holds the
model, its tokenizers and config, and forwards each user action to its module, so that adding a head
touches no other head's module.
"""
from __future__ import annotations

import os

import torch

from . import crossmodal, recognition
from .checkpoint import build_model, read_model_dir, read_text_vocabularies
from .config import CommandOptions, TranscribeOptions
from .recognition import DECODERS, Transcript  # noqa: F401  (re-exported: the public result type)
from .beam_search import TorchDecoder
from .models.audio_encoder import frame_hop, frame_shift
from .runner import autocast, encode_loaded


class Pipeline:
    """The user actions every backend offers (recognition, commands, the shared space), each forwarded
    to its head's module, which reaches the model only through the backend's calls:
    ``recognition_outputs``, ``frame_timing``, ``audio_outputs``, ``text_outputs``, ``match_scores``,
    ``logit_scale`` (PyTorch: :class:`SpeechTextPipeline`; ONNX Runtime:
    :class:`~speechtext.onnx_backend.OnnxPipeline`)."""

    def transcribe(self, inputs, options: TranscribeOptions | None = None, progress: bool = False,
                   **overrides) -> list[Transcript]:
        """Transcribe audio files; returns one :class:`Transcript` per input, in input order.

        ``inputs``: paths, :class:`~speechtext.audio.AudioSpec`, or ``(id, path-or-spec)`` pairs. Bad
        inputs get ``error`` set (naming the file and the problem) and the rest are still transcribed.
        ``overrides`` set :class:`~speechtext.config.TranscribeOptions` fields by name.
        """
        return recognition.transcribe(self, inputs, options, progress, **overrides)

    def embed_audio(self, inputs, options: TranscribeOptions | None = None, progress: bool = False):
        """Shared-space unit vectors of audio inputs: a list of :class:`~speechtext.crossmodal.AudioEmbedding`."""
        return crossmodal.embed_audio(self, inputs, options, progress)

    def embed_text(self, texts: list[str]):
        """Shared-space unit vectors of texts: ``(N, D)`` numpy array."""
        return crossmodal.embed_text(self, texts)

    def classify_command(self, inputs, commands=None, threshold: float | None = CommandOptions.threshold,
                         options: TranscribeOptions | None = None, progress: bool = False,
                         acoustic_weight: float = CommandOptions.acoustic_weight,
                         intent_from: str = CommandOptions.intent_from):
        """Best free-text command (zero-shot) or, without ``commands``, the closed-set intent, per input;
        ``intent_from``: audio | transcript (decoded with ``options``) | both."""
        return crossmodal.classify_command(self, inputs, commands, threshold, options, progress, acoustic_weight,
                                           intent_from)

    def search_texts(self, inputs, texts: list[str], top_k: int = 5, **kwargs):
        """Audio -> text search: the best ``top_k`` of ``texts`` per input (see :func:`speechtext.crossmodal.search_texts`)."""
        return crossmodal.search_texts(self, inputs, texts, top_k, **kwargs)


class SpeechTextPipeline(Pipeline):
    """A loaded PyTorch model with its tokenizer and config; what :func:`load_model` returns for a model
    directory. Adds alignment, synthesis and raw encoder frames to the shared actions."""

    backend = "torch"

    def __init__(self, model, tokenizer, config, device: str = "cpu", path: str | None = None, text_tokenizer=None,
                 intents: list[str] | None = None, transcript_intents=None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer, self.config, self.path = tokenizer, config, path
        self.text_tokenizer, self.intents = text_tokenizer, intents
        self.transcript_intents = transcript_intents  # an intent_text.TranscriptIntents, or None
        self.cache: dict = {}  # what a head loads once per pipeline (the external LM), the last batch's frames

    def align(self, utterances, options: TranscribeOptions | None = None, progress: bool = False):
        """Force-align each utterance's reference text to its audio (see :func:`speechtext.align.align_utterances`)."""
        from .align import align_utterances

        return align_utterances(self, utterances, options, progress)

    def synthesize(self, texts, reference, options=None, progress: bool = False, **overrides):
        """Speak ``texts`` in the voice of ``reference``: one :class:`~speechtext.synthesis.SynthesisResult`
        per text (waveform, sample rate, mel frames, durations, speaker vector, or ``error``); see
        :func:`speechtext.synthesis.synthesize`. ``overrides`` set :class:`~speechtext.config.SynthesisOptions` fields."""
        from .synthesis import synthesize

        return synthesize(self, texts, reference, options, progress, **overrides)

    def encode(self, loaded, precision: str = "auto"):
        """Encoder frames of loaded inputs ``[(index, samples), ...]``: ``((B, T, H), (B,))``."""
        return encode_loaded(self, loaded, precision)

    # The backend's model calls (the ONNX Runtime pipeline has the same ones).
    @property
    def heads(self) -> list[str]:
        """Names of the model's heads (``ctc``, ``attention``, ``command``, ``synthesis``)."""
        return list(self.model.heads)

    def recognition_outputs(self, loaded, precision: str, attention: bool = False):
        """CTC log-probabilities ``(B, T, V)`` of loaded inputs with ``frame_lengths (B,)``, and with
        ``attention`` the attention decoder over their frames (for :func:`~speechtext.beam_search.beam_search`)."""
        frames, frame_lengths = encode_loaded(self, loaded, precision)
        with torch.inference_mode(), autocast(self.device, precision):
            log_probs = self.model.heads["ctc"](frames)
        return log_probs, frame_lengths, TorchDecoder(self.model, frames, frame_lengths) if attention else None

    def frame_timing(self) -> tuple[float, float]:
        """``(hop, shift)`` seconds: frame ``t`` is centred at ``t * hop + shift + hop / 2``."""
        return frame_hop(self.model.audio_encoder), frame_shift(self.model.audio_encoder)

    def set_num_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)

    @torch.inference_mode()
    def audio_outputs(self, loaded, precision: str, want=("vectors",)) -> dict:
        """``frames (B, T, H)`` and ``lengths (B,)`` of loaded inputs, and those of ``vectors`` (shared
        space, ``(B, D)``), ``intent_logits (B, I)`` and ``log_probs (B, T, V)`` that ``want`` names."""
        frames, lengths = encode_loaded(self, loaded, precision)
        out, model = {"frames": frames, "lengths": lengths}, self.model
        if "vectors" in want:
            out["vectors"] = model.embed_frames(frames, lengths)
        if "intent_logits" in want:
            out["intent_logits"] = model.heads["command"].intent_logits(model.fusion, frames, lengths)
        if "log_probs" in want:
            out["log_probs"] = model.heads["ctc"](frames)
        return out

    @torch.inference_mode()
    def text_outputs(self, ids: torch.Tensor, lengths: torch.Tensor):
        """Text-encoder states ``(N, L, Ht)`` and shared-space vectors ``(N, D)`` of token ids ``(N, L)``."""
        return self.model.encode_texts(ids, lengths)

    @torch.inference_mode()
    def match_scores(self, frames, lengths, states, text_lengths, pairs) -> torch.Tensor:
        """The command head's fusion match of (audio, text) ``pairs (P, 2)``: ``(P,)``; zeros for a model
        without one (its texts are then scored by the shared space and the CTC spelling alone)."""
        if "command" not in self.model.heads:
            return frames.new_zeros(len(pairs))
        return self.model.heads["command"].pair_scores(self.model.fusion, states, text_lengths, frames, lengths, pairs)

    def logit_scale(self) -> torch.Tensor:
        """CLIP's learned scale of shared-space cosines."""
        return self.model.shared_space.scale()


def load_model(path: str, device: str = "cpu", backend: str = "torch"):
    """Load a model and return its pipeline.

    ``path``: a speechtext model directory, a packed archive of one (``speechtext pack``; unpacked once
    into a cache, its checksums verified), an ``.onnx`` export (``speechtext export``; run with ONNX
    Runtime), or a Hugging Face ``*ForCTC`` checkpoint (local directory or hub id) to import.
    ``backend="onnxruntime"`` exports a model directory's recogniser once (cached) and runs it there.
    Returns a :class:`SpeechTextPipeline`, or an :class:`~speechtext.onnx_backend.OnnxPipeline`.
    """
    from .archive import is_archive, open_archive
    from .checkpoint import META_FILE
    from .hf_import import import_hf_ctc
    from .intent_text import TranscriptIntents

    if backend not in ("torch", "onnxruntime"):
        raise ValueError(f"backend must be torch or onnxruntime, not {backend!r}")
    if is_archive(path):
        path = open_archive(path)
    if path.endswith(".onnx") and os.path.isfile(path):
        from .onnx_backend import OnnxPipeline

        return OnnxPipeline(path)
    if backend == "onnxruntime":
        from .onnx_backend import OnnxPipeline, cached_export

        return OnnxPipeline(cached_export(path))
    if os.path.isfile(os.path.join(path, META_FILE)):
        config, tokenizer, weights = read_model_dir(path)
        text_tokenizer, intents = read_text_vocabularies(path)
        model = build_model(config, tokenizer, weights, text_tokenizer=text_tokenizer, intents=intents)
        return SpeechTextPipeline(model, tokenizer, config, device=device, path=path, text_tokenizer=text_tokenizer,
                                  intents=intents, transcript_intents=TranscriptIntents.load(path) if intents else None)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path}: neither a speechtext model directory nor a Hugging Face checkpoint")
    try:
        model, tokenizer, config = import_hf_ctc(path)
    except OSError as exc:  # not here, and not a hub id this machine can reach or has cached
        if os.path.exists(path):  # a local checkpoint that failed to read: its own error says what is wrong
            raise
        raise FileNotFoundError(f"{path}: no such model directory, archive or .onnx file here, and no Hugging Face "
                                f"model of that id reachable or cached ({str(exc).splitlines()[0]})") from exc
    return SpeechTextPipeline(model, tokenizer, config, device=device, path=path)
