"""Inference through ONNX Runtime: :class:`OnnxPipeline`, what :func:`speechtext.load_model` returns
for an ``.onnx`` file written by :func:`speechtext.export.export_onnx`.

It offers recognition and (for models with a command head) commands and the shared space, and runs
the very same code as the PyTorch pipeline above the model: the batch runner, every decoder (greedy,
CTC prefix beam, attention and joint beam search, LM fusion), word timestamps, chunking of long
inputs, command scoring, per-input errors. Only the model calls differ: the recogniser graph gives
CTC log-probabilities (and the decoder's cross-attention keys and values, the frames, the audio's
shared-space vector and intent logits), :class:`OnnxDecoder` steps the decoder graph, and the text
and command graphs encode texts and match them against the frames.
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from .batching import pad_waveforms
from .export import MODEL_TYPE, ONNX_FORMAT_VERSION, ExportError
from .inference import Pipeline
from .models.audio_encoder import frame_mask
from .tokenizer import tokenizer_from_dict


def _session(path: str, threads: int):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError(f"{path}: running ONNX models needs onnxruntime: pip install 'speechtext[onnx]'") from exc
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: the runtime's own warnings are not the user's
    # The memory-pattern planner keeps a preallocated plan per input shape; with every input of its own
    # length that only grows (a 3-minute file in 30 s chunks: peak RSS 2225 MiB with it, 1637 without,
    # at the same speed).
    options.enable_mem_pattern = False
    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for torn or foreign files
        raise ExportError(f"{path}: cannot load the ONNX model ({exc}); it may be truncated or not an ONNX file") from exc


class OnnxDecoder:
    """The attention decoder graph over one batch, with :class:`~speechtext.beam_search.TorchDecoder`'s
    interface (``sos_eos``, ``start``, ``step``, ``reorder``) for the shared beam search."""

    def __init__(self, session, meta: dict, cross_kv: np.ndarray, frame_lengths: torch.Tensor):
        self.session, self.sos_eos, self.cross = session, int(meta["sos_eos"]), cross_kv
        self.mask = frame_mask(frame_lengths, cross_kv.shape[4]).numpy()
        self.layers, self.heads, self.head_dim = (int(meta[k]) for k in ("fusion_layers", "fusion_heads", "fusion_head_dim"))

    def start(self, owner: torch.Tensor):
        rows = owner.numpy()
        past = np.zeros((self.layers, 2, len(rows), self.heads, 0, self.head_dim), dtype=np.float32)  # no position yet
        return np.ascontiguousarray(self.cross[:, :, rows]), self.mask[rows], past

    def step(self, last: torch.Tensor, position: int, state):
        cross, mask, past = state
        logits, past = self.session.run(None, {"tokens": last.numpy(), "position": np.array([position], dtype=np.int64),
                                               "past_kv": past, "cross_kv": cross, "frame_mask": mask})
        return torch.from_numpy(logits), (cross, mask, past)

    def reorder(self, state, src: torch.Tensor):
        cross, mask, past = state
        return cross, mask, np.ascontiguousarray(past[:, :, src.numpy()])


class OnnxPipeline(Pipeline):
    """An export loaded into ONNX Runtime (CPU). ``transcribe`` behaves as
    :meth:`speechtext.inference.SpeechTextPipeline.transcribe`; with a command head's graphs, so do
    ``classify_command``, ``embed_audio``, ``embed_text`` and ``search_texts``."""

    backend = "onnxruntime"

    def __init__(self, path: str, num_threads: int = 0):
        self.path, self.device, self.cache, self.threads = path, torch.device("cpu"), {}, num_threads
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such ONNX file")
        self.session = _session(path, num_threads)
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.meta.get("model_type") != MODEL_TYPE:
            raise ExportError(f"{path}: not a speechtext export (no '{MODEL_TYPE}' model_type in its metadata)")
        if self.meta.get("speechtext_onnx_format") != str(ONNX_FORMAT_VERSION):
            raise ExportError(f"{path}: ONNX export format {self.meta.get('speechtext_onnx_format')}, this speechtext "
                              f"reads {ONNX_FORMAT_VERSION}; export it again with this version")
        self.tokenizer = tokenizer_from_dict(json.loads(self.meta["tokenizer"]), path)
        self.normalize = self.meta["normalize_waveform"] == "1"
        self.outputs, self.graphs = self.meta["outputs"].split(","), json.loads(self.meta["graphs"])
        self.text_tokenizer, self.intents, self.transcript_intents, self._sessions = None, None, None, {}
        self._last = None  # (loaded inputs, outputs) of the last batch
        if "text_tokenizer" in self.meta:
            from .text_tokenizer import TextTokenizer

            self.text_tokenizer = TextTokenizer.from_json(self.meta["text_tokenizer"])
            self.intents = json.loads(self.meta["intents"]) or None
        if "transcript_intents" in self.meta:
            from .intent_text import TranscriptIntents

            self.transcript_intents = TranscriptIntents.from_json(self.meta["transcript_intents"], where=path)

    @property
    def heads(self) -> list[str]:
        return self.meta["heads"].split(",")

    def frame_timing(self) -> tuple[float, float]:
        return float(self.meta["frame_hop"]), float(self.meta["frame_shift"])

    def set_num_threads(self, threads: int) -> None:
        if threads != self.threads:
            self.threads, self.session, self._sessions = threads, _session(self.path, threads), {}

    def graph(self, part: str):
        """The session of graph ``part`` (decoder, text, command), loaded on first use."""
        if part not in self._sessions:
            if part not in self.graphs:
                raise ExportError(f"{self.path}: this export has no {part} graph (the model has no such head)")
            path = os.path.join(os.path.dirname(os.path.abspath(self.path)), self.graphs[part])
            if not os.path.isfile(path):
                raise ExportError(f"{self.path}: its {part} graph {path} is missing; keep the export's files together")
            self._sessions[part] = _session(path, self.threads)
        return self._sessions[part]

    def _run(self, waves: list) -> list[np.ndarray]:
        waveforms, lengths = pad_waveforms(waves, self.normalize)
        return self.session.run(None, {"waveforms": waveforms.numpy(), "lengths": lengths.numpy()})

    def _outputs(self, loaded, precision: str) -> dict[str, np.ndarray]:
        """The recogniser graph's outputs for loaded inputs; the last batch's are remembered (see
        :func:`speechtext.runner.encode_loaded`)."""
        if precision == "bf16":
            raise ValueError(f"{self.path}: the onnxruntime backend runs fp32 or int8 graphs, not bf16; "
                             "use --precision auto/fp32 (export with --quantize int8 for speed)")
        if self._last is not None and self._last[0] is loaded:
            return self._last[1]
        self._last = (loaded, self._run_graph(loaded))
        return self._last[1]

    def _run_graph(self, loaded) -> dict[str, np.ndarray]:
        waves = [wave for _, wave in loaded]
        if self.meta["per_utterance_frontend"] == "1" and len(waves) > 1:
            # GroupNorm front ends normalise over time, so padding would change every frame: one at a time.
            parts = [self._run([w]) for w in waves]
            return {name: _pad_cat([p[k] for p in parts], 2 if name == "cross_kv" else 0)
                    for k, name in enumerate(self.outputs)}
        return dict(zip(self.outputs, self._run(waves)))

    def recognition_outputs(self, loaded, precision: str, attention: bool = False):
        """As :meth:`speechtext.inference.SpeechTextPipeline.recognition_outputs`, from the graphs."""
        out = self._outputs(loaded, precision)
        log_probs, frame_lengths = torch.from_numpy(out["log_probs"]), torch.from_numpy(out["frame_lengths"])
        decoder = OnnxDecoder(self.graph("decoder"), self.meta, out["cross_kv"], frame_lengths) if attention else None
        return log_probs, frame_lengths, decoder

    def audio_outputs(self, loaded, precision: str, want=("vectors",)) -> dict:
        """As :meth:`speechtext.inference.SpeechTextPipeline.audio_outputs`, from the graphs."""
        if "command" not in self.heads:
            raise ExportError(f"{self.path}: this export has no command head (heads: {self.meta['heads']})")
        out = self._outputs(loaded, precision)
        result = {"frames": torch.from_numpy(out["frames"]), "lengths": torch.from_numpy(out["frame_lengths"])}
        names = {"vectors": "audio_vectors", "intent_logits": "intent_logits", "log_probs": "log_probs"}
        result.update({key: torch.from_numpy(out[names[key]]) for key in want})
        return result

    def text_outputs(self, ids: torch.Tensor, lengths: torch.Tensor):
        states, vectors = self.graph("text").run(None, {"ids": ids.numpy(), "lengths": lengths.numpy()})
        return torch.from_numpy(states), torch.from_numpy(vectors)

    def match_scores(self, frames, lengths, states, text_lengths, pairs) -> torch.Tensor:
        feed = {"frames": frames.numpy(), "frame_lengths": lengths.numpy(), "states": states[pairs[:, 1]].numpy(),
                "text_lengths": text_lengths[pairs[:, 1]].numpy(), "audio_index": pairs[:, 0].numpy()}
        return torch.from_numpy(self.graph("command").run(None, feed)[0])

    def logit_scale(self) -> torch.Tensor:
        return torch.tensor(float(self.meta["logit_scale"]))

    def __getattr__(self, name):
        if name in ("model", "align", "synthesize", "encode"):
            raise ExportError(f"{self.path}: an ONNX export holds the recogniser and the command head; {name} needs "
                              "the model directory (or its archive)")
        raise AttributeError(name)


def cached_export(model_dir: str, quantize: str | None = None) -> str:
    """The ONNX export of ``model_dir``'s recogniser, made once per model version and kept in the cache
    (``--backend onnxruntime`` on a model directory). Keyed by the directory's path and its files'
    names, sizes and modification times (cheap on every call; training replaces a model directory
    as a whole, so a retrained model gets new times and a new export)."""
    import hashlib

    from . import __version__
    from .archive import cache_dir
    from .export import export_onnx

    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    key = hashlib.sha256(f"{__version__} {ONNX_FORMAT_VERSION} {quantize} {os.path.abspath(model_dir)}".encode())
    for name in sorted(os.listdir(model_dir)):
        info = os.stat(os.path.join(model_dir, name))
        key.update(f"{name} {info.st_size} {info.st_mtime_ns}".encode())
    path = os.path.join(cache_dir("onnx"), key.hexdigest()[:32], "model.onnx")
    if not os.path.isfile(path):
        export_onnx(model_dir, path, quantize)  # a broken directory fails here, naming what is missing
    return path


def _pad_cat(arrays: list[np.ndarray], axis: int) -> np.ndarray:
    """Concatenate per-utterance outputs along the batch ``axis``, zero-padding the time axis after it."""
    if arrays[0].ndim == 1:
        return np.concatenate(arrays)
    time_axis = axis + 1 if axis == 0 else 4
    longest = max(a.shape[time_axis] for a in arrays)
    padded = []
    for a in arrays:
        widths = [(0, 0)] * a.ndim
        widths[time_axis] = (0, longest - a.shape[time_axis])
        padded.append(np.pad(a, widths))
    return np.concatenate(padded, axis=axis)
