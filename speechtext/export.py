"""ONNX export of the recogniser and the command head: :func:`export_onnx` (``speechtext export``).

Separate graphs, as icefall's and sherpa-onnx's exports split theirs:

* ``model.onnx``, the **recogniser**: ``waveforms (B, S)`` float32 (already normalised as the
  model expects, zero-padded) and ``lengths (B,)`` int64 → ``log_probs (B, T, V)`` of the CTC head,
  ``frame_lengths (B,)``; for a model with an attention decoder also ``cross_kv (layers, 2, B, heads,
  T, d)``, every fusion layer's cross-attention keys and values over the frames, computed once; for
  a model with a command head also ``frames (B, T, H)``, ``audio_vectors (B, D)`` (shared space) and
  ``intent_logits (B, I)``.
* ``model.decoder.onnx``, the attention decoder's **incremental step**: ``tokens (N,)``, ``position
  (1,)``, ``past_kv (layers, 2, N, heads, L, d)`` (L = 0 at the first step), ``cross_kv`` rows of the
  hypotheses, ``frame_mask (N, T)`` bool → ``logits (N, V + 1)`` and ``new_past_kv`` (L + 1 positions).
* ``model.text.onnx``, the **text encoder**: ``ids (N, L)``, ``lengths (N,)`` → ``states (N, L, Ht)``,
  ``vectors (N, D)``; and ``model.command.onnx``, the command head's **fusion match**: ``frames``,
  ``frame_lengths``, text ``states`` / ``text_lengths`` of P rows and the ``audio_index (P,)`` of each
  → ``match (P,)``.

Batch, time, token and cache axes are dynamic. Everything needed to use the graphs rides in the
recogniser's ONNX metadata (:data:`METADATA_KEYS`): the vocabularies (recogniser and text), intents
and the transcript intent classifier, sample rate, frame hop and shift, waveform normalisation, the
other graphs' file names, the shared space's scale, the format version. ``--quantize int8`` applies ONNX Runtime's dynamic
quantization (int8 weights, activations quantized per call) to the matrix multiplications.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings

import torch
from torch import nn

from . import __version__
from .audio import SAMPLE_RATE
from .models.audio_encoder import MelFrontend, encode_audio

ONNX_FORMAT_VERSION = 1
MODEL_TYPE = "speechtext-recogniser"
METADATA_KEYS = ("speechtext_onnx_format", "model_type", "speechtext_version", "tokenizer", "sample_rate",
                 "frame_hop", "frame_shift", "normalize_waveform", "per_utterance_frontend", "heads", "graphs",
                 "outputs", "quantization", "sos_eos", "fusion_layers", "fusion_heads", "fusion_head_dim",
                 "text_tokenizer", "intents", "logit_scale", "transcript_intents")
OPSET = 18


class ExportError(ValueError):
    """A model that cannot be exported, or an export that cannot be loaded; the message says why."""


class _UnfoldedFrontEnd(nn.Module):
    """The wav2vec2 conv front end with every multi-channel Conv1d as strided slices and one MatMul, in
    channels-last layout. Same function; but dynamic int8 quantization makes MatMuls several times
    faster while ONNX Runtime's ConvInteger is slower than fp32 Conv, and the front end is a third of
    wav2vec2-base's time on CPU. The first layer (one input channel, the GroupNorm) stays as it is."""

    def __init__(self, feature_extractor: nn.Module):
        super().__init__()
        self.first, self.layers = feature_extractor.conv_layers[0], feature_extractor.conv_layers[1:]
        self.weights = nn.ParameterList()
        for layer in self.layers:
            conv = layer.conv
            if conv.groups != 1 or conv.dilation[0] != 1 or conv.padding[0] != 0:
                raise ExportError("the conv front end has a grouped, dilated or padded layer; not a wav2vec2 front end")
            out, inp, kernel = conv.weight.shape  # (k, C, O) flattened, matching the slices' order below
            self.weights.append(nn.Parameter(conv.weight.detach().permute(2, 1, 0).reshape(kernel * inp, out)))

    def forward(self, waveforms):  # (B, S) -> (B, C, T), as the original
        x = self.first(waveforms[:, None]).transpose(1, 2)
        for layer, weight in zip(self.layers, self.weights):
            kernel, stride = layer.conv.kernel_size[0], layer.conv.stride[0]
            cols = x.unfold(1, kernel, stride).transpose(2, 3)  # (B, T', k, C)
            x = cols.reshape(cols.shape[0], cols.shape[1], -1) @ weight
            if layer.conv.bias is not None:
                x = x + layer.conv.bias
            norm = getattr(layer, "layer_norm", None)
            if norm is not None:
                if not isinstance(norm, nn.LayerNorm):
                    raise ExportError("a GroupNorm past the first conv layer; not a wav2vec2 front end")
                x = norm(x)
            x = layer.activation(x)
        return x.transpose(1, 2)


def recogniser_outputs(model) -> list[str]:
    """Output names of the recogniser graph of ``model``: what its heads need downstream."""
    names = ["log_probs", "frame_lengths"] + (["cross_kv"] if "attention" in model.heads else [])
    if "command" in model.heads:
        names += ["frames", "audio_vectors"] + (["intent_logits"] if model.heads["command"].intent is not None else [])
    return names


class _Recogniser(nn.Module):
    def __init__(self, model, outputs: list[str]):
        super().__init__()
        self.model, self.outputs = model, outputs

    def forward(self, waveforms, lengths):
        model = self.model
        frames, frame_lengths = encode_audio(model.audio_encoder, waveforms, lengths, batched_frontend=True)
        out = {"log_probs": model.heads["ctc"](frames), "frame_lengths": frame_lengths, "frames": frames}
        if "cross_kv" in self.outputs:
            cross = model.fusion.memory(frames, frame_lengths).kv
            out["cross_kv"] = torch.stack([torch.stack(kv) for kv in cross])
        if "audio_vectors" in self.outputs:
            out["audio_vectors"] = model.embed_frames(frames, frame_lengths)
        if "intent_logits" in self.outputs:
            out["intent_logits"] = model.heads["command"].intent_logits(model.fusion, frames, frame_lengths)
        return tuple(out[name] for name in self.outputs)


class _TextEncoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, lengths):
        return self.model.encode_texts(ids, lengths)


class _CommandMatch(nn.Module):
    """The command head's fusion match of text rows over the frames of ``audio_index`` (one per row)."""

    def __init__(self, model):
        super().__init__()
        self.head, self.fusion = model.heads["command"], model.fusion

    def forward(self, frames, frame_lengths, states, text_lengths, audio_index):
        pairs = torch.stack([audio_index, torch.arange(audio_index.shape[0])], -1)
        return self.head.pair_scores(self.fusion, states, text_lengths, frames, frame_lengths, pairs)


class _DecoderStep(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.head, self.fusion = model.heads["attention"], model.fusion

    def forward(self, tokens, position, past_kv, cross_kv, frame_mask):
        layers = range(past_kv.shape[0])
        fused, new = self.fusion.step(self.head.embed_step(tokens, position), [(past_kv[i, 0], past_kv[i, 1]) for i in layers],
                                      [(cross_kv[i, 0], cross_kv[i, 1]) for i in layers], frame_mask[:, None, None, :])
        return self.head.out(fused).float(), torch.stack([torch.stack(kv) for kv in new])


def graph_path(model_path: str, part: str) -> str:
    """Where graph ``part`` (decoder, text, command) of the recogniser graph ``model_path`` is written:
    ``<stem>.<part>.onnx`` beside it."""
    stem = model_path[:-5] if model_path.endswith(".onnx") else model_path
    return f"{stem}.{part}.onnx"


def _export(module, args, path: str, names: tuple[list[str], list[str]], dynamic: dict) -> None:
    # The exporter narrates each pass on stdout and warns about optional packages: kept for a failure only.
    with _quiet() as chatter, torch.no_grad():
        try:
            torch.onnx.export(module, args, path, dynamo=True, input_names=names[0], output_names=names[1],
                              dynamic_shapes=dynamic, opset_version=OPSET, verbose=False, report=False)
        except Exception as exc:
            raise ExportError(f"ONNX export of {type(module).__name__} failed: {exc}\n{chatter.getvalue()}") from exc


def _export_recogniser(model, path: str) -> None:
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=1600, max=16000 * 3600)
    waves = torch.randn(2, 32000)
    lengths = torch.tensor([32000, 24000])
    outputs = recogniser_outputs(model)
    _export(_Recogniser(model, outputs).eval(), (waves, lengths), path, (["waveforms", "lengths"], outputs),
            {"waveforms": {0: batch, 1: samples}, "lengths": {0: batch}})


def _export_text(model, path: str) -> None:
    n, length = torch.export.Dim("texts"), torch.export.Dim("tokens", max=512)
    args = (torch.tensor([[2, 5, 6, 3], [2, 7, 3, 0]]), torch.tensor([4, 3]))
    _export(_TextEncoder(model).eval(), args, path, (["ids", "lengths"], ["states", "vectors"]),
            {"ids": {0: n, 1: length}, "lengths": {0: n}})


def _export_command(model, path: str) -> None:
    hidden, text_dim = model.audio_encoder.config.hidden_size, model.text_encoder.config.hidden_size
    batch, frames, rows, tokens = (torch.export.Dim(name) for name in ("batch", "frames", "rows", "tokens"))
    args = (torch.randn(2, 7, hidden), torch.tensor([7, 5]), torch.randn(3, 4, text_dim), torch.tensor([4, 2, 3]),
            torch.tensor([0, 1, 1]))
    names = (["frames", "frame_lengths", "states", "text_lengths", "audio_index"], ["match"])
    _export(_CommandMatch(model).eval(), args, path, names,
            {"frames": {0: batch, 1: frames}, "frame_lengths": {0: batch}, "states": {0: rows, 1: tokens},
             "text_lengths": {0: rows}, "audio_index": {0: rows}})


def _cache_shape(model) -> tuple[int, int, int]:
    """``(layers, heads, head_dim)`` of the fusion block: the shape of the decoder's key/value caches."""
    attn = model.fusion.layers[0].cross_attn
    return len(model.fusion.layers), attn.num_heads, attn.embed_dim // attn.num_heads


def _export_decoder(model, path: str) -> None:
    layers, heads, head_dim = _cache_shape(model)
    n, past, frames = torch.export.Dim("hyps"), torch.export.Dim("past"), torch.export.Dim("frames")
    args = (torch.tensor([3, 4]), torch.tensor([2]), torch.randn(layers, 2, 2, heads, 2, head_dim),
            torch.randn(layers, 2, 2, heads, 5, head_dim), torch.ones(2, 5, dtype=torch.bool))
    names = (["tokens", "position", "past_kv", "cross_kv", "frame_mask"], ["logits", "new_past_kv"])
    _export(_DecoderStep(model).eval(), args, path, names,
            {"tokens": {0: n}, "position": None, "past_kv": {2: n, 4: past}, "cross_kv": {2: n, 4: frames},
             "frame_mask": {0: n, 1: frames}})


def _metadata(pipeline, graphs: dict[str, str], quantize: str | None) -> dict[str, str]:
    model = pipeline.model
    hop, shift = pipeline.frame_timing()
    meta = {"speechtext_onnx_format": str(ONNX_FORMAT_VERSION), "model_type": MODEL_TYPE,
            "speechtext_version": __version__, "tokenizer": json.dumps(pipeline.tokenizer.to_dict(), ensure_ascii=False),
            "sample_rate": str(SAMPLE_RATE), "frame_hop": repr(hop), "frame_shift": repr(shift),
            "normalize_waveform": str(int(pipeline.config.model.normalize_waveform)),
            "per_utterance_frontend": str(int(getattr(model.audio_encoder.config, "feat_extract_norm", "") == "group")),
            "heads": ",".join(h for h in ("ctc", "attention", "command") if h in model.heads),
            "graphs": json.dumps(graphs), "outputs": ",".join(recogniser_outputs(model)), "quantization": quantize or "none"}
    if "command" in model.heads:
        meta.update(text_tokenizer=pipeline.text_tokenizer.to_json(), intents=json.dumps(pipeline.intents or []),
                    logit_scale=repr(float(model.shared_space.scale().detach())))
        if pipeline.transcript_intents is not None:
            meta["transcript_intents"] = pipeline.transcript_intents.to_json()
    if "decoder" in graphs:
        layers, heads, head_dim = _cache_shape(model)
        meta.update(sos_eos=str(model.heads["attention"].sos_eos), fusion_layers=str(layers), fusion_heads=str(heads),
                    fusion_head_dim=str(head_dim))
    return meta


@contextlib.contextmanager
def _quiet():
    """Silence library warnings (the exporter's deprecations, the optimizer's shape-inference notes)."""
    chatter = io.StringIO()
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            yield chatter
    finally:
        logging.disable(logging.NOTSET)


def _optimize(path: str, heads: int, hidden: int) -> None:
    """ONNX Runtime's transformer fusions (GELU, bias + GELU, LayerNorm, skip + LayerNorm) in place:
    fewer, larger kernels; the same function. A graph the optimizer cannot handle is kept as it is."""
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        with _quiet():
            optimize_model(path, model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1).save_model_to_file(path)
    except Exception as exc:  # an optimisation, never a reason to fail the export
        logging.getLogger(__name__).warning("kept the graph unoptimised: ONNX Runtime's optimizer failed (%s)", exc)


def _finish(tmp: str, path: str, meta: dict[str, str] | None, quantize: str | None, encoder_config=None) -> None:
    """Optimise the recogniser graph (``encoder_config`` given), quantize ``tmp`` if asked, attach
    ``meta`` and move the result to ``path`` atomically."""
    import onnx

    if encoder_config is not None:
        _optimize(tmp, encoder_config.num_attention_heads, encoder_config.hidden_size)
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = f"{tmp}.int8"
        # reduce_range: 7-bit weights. On CPUs without VNNI (AVX2 only) onnxruntime's u8s8 kernels sum
        # pairs of 8-bit products into int16, which saturates with full-range weights: the mel test model
        # drifted 0.53 from PyTorch there (0.5 allowed) while VNNI machines stayed within it. An export is
        # carried to other CPUs, so it is made for the one without VNNI.
        with _quiet():
            quantize_dynamic(tmp, quantized, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                             reduce_range=True)
        os.replace(quantized, tmp)
    graph = onnx.load(tmp)
    if meta:
        del graph.metadata_props[:]
        for key, value in meta.items():
            graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, tmp)
    os.replace(tmp, path)


def export_onnx(model_dir: str, output: str, quantize: str | None = None) -> list[str]:
    """Export the recogniser of ``model_dir`` (a speechtext model directory or archive) to ONNX at
    ``output``, plus ``<stem>.decoder.onnx`` when the model has an attention decoder and
    ``<stem>.text.onnx`` + ``<stem>.command.onnx`` when it has a command head. ``quantize``:
    ``None`` (fp32) or ``"int8"``. Returns the paths written."""
    from .inference import load_model

    if quantize not in (None, "none", "int8"):
        raise ExportError(f"--quantize must be int8 (or left out for fp32), not {quantize!r}")
    quantize = None if quantize == "none" else quantize
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the onnx extra ({exc.name} is missing): pip install 'speechtext[onnx]'") from exc
    pipeline = load_model(model_dir)
    if pipeline.backend != "torch":
        raise ExportError(f"{model_dir}: already an ONNX export; export from the model directory it came from")
    if "ctc" not in pipeline.model.heads:
        raise ExportError(f"{model_dir}: this model has no CTC head (heads: {', '.join(pipeline.model.heads)}); "
                          "only the recogniser is exported")
    model = pipeline.model.float().eval()
    if quantize == "int8" and not isinstance(model.audio_encoder.feature_extractor, MelFrontend):
        # in fp32, ONNX Runtime's Conv is the faster of the two; the mel front end's convs are small
        model.audio_encoder.feature_extractor = _UnfoldedFrontEnd(model.audio_encoder.feature_extractor)
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)
    parts = {"decoder": _export_decoder} if "attention" in model.heads else {}
    if "command" in model.heads:
        parts.update(text=_export_text, command=_export_command)
    graphs = {part: os.path.basename(graph_path(output, part)) for part in parts}
    with tempfile.TemporaryDirectory(dir=directory, prefix=".export-") as tmp:
        for part, export in parts.items():
            export(model, os.path.join(tmp, f"{part}.onnx"))
            _finish(os.path.join(tmp, f"{part}.onnx"), graph_path(output, part), None, quantize)
        _export_recogniser(model, os.path.join(tmp, "model.onnx"))
        _finish(os.path.join(tmp, "model.onnx"), output, _metadata(pipeline, graphs, quantize), quantize,
                model.audio_encoder.config)
    return [output] + [graph_path(output, part) for part in parts]
