"""The wav2vec2-family audio encoder (wav2vec2, HuBERT, WavLM from ``transformers``).

The encoder is the ``transformers`` model itself, so any checkpoint of those families loads into it
unchanged; the functions here add what speechtext needs around it: size presets, the one function
that maps sample lengths to frame lengths, and a forward that takes ``(waveforms, lengths)``.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, Wav2Vec2Config

from ..config import ConfigError, EncoderConfig

# Sized for a 2-core CPU: 20 ms frames from a 4-layer conv front end whose first layer already
# strides 10 samples with few channels (the raw-waveform convolutions dominate CPU time; this is
# 1.4x faster per step than wav2vec2's stride-5 first layer at the same size), and pre-LayerNorm
# transformer blocks, which leave the CTC blank plateau sooner when trained from scratch.
# Two more choices for fp32 CPUs (no native bf16), each measured on a 35 s training batch: no
# attention dropout, so SDPA takes its fused kernel instead of the math path (0.92 -> 0.74 s/step),
# and 32/96 channels in the first two conv layers, which run at 1600 and 400 frames/s (-> 0.68 s/step).
PRESETS = {
    "tiny": dict(
        hidden_size=192, num_hidden_layers=6, num_attention_heads=4, intermediate_size=768,
        conv_dim=[32, 96, 192, 192], conv_kernel=[20, 8, 4, 4], conv_stride=[10, 4, 4, 2],
        feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
        num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=8,
        hidden_dropout=0.1, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.05, mask_time_length=5,
        mask_feature_prob=0.05, mask_feature_length=16,
    ),
    # Same shapes as facebook/wav2vec2-base, so its weights fit.
    "base": dict(mask_time_prob=0.05, layerdrop=0.0),
}


def _hf_config(cfg: EncoderConfig):
    if cfg.hf_config is not None:
        values = dict(cfg.hf_config)
        model_type = values.pop("model_type", "wav2vec2")
        return AutoConfig.for_model(model_type, **values)
    if cfg.pretrained:
        config = AutoConfig.from_pretrained(cfg.pretrained)
    elif cfg.preset in PRESETS:
        # Through the constructor, so that derived values (num_feat_extract_layers) follow the overrides.
        return Wav2Vec2Config(**{**PRESETS[cfg.preset], **cfg.overrides})
    else:
        raise ConfigError(f"model.encoder: unknown preset '{cfg.preset}'; choose one of {', '.join(PRESETS)} or set 'pretrained'")
    for key, value in cfg.overrides.items():
        if not hasattr(config, key):
            raise ConfigError(f"model.encoder.overrides: '{key}' is not a {type(config).__name__} setting")
        setattr(config, key, value)
    config.num_feat_extract_layers = len(config.conv_dim)
    return config


def build_audio_encoder(cfg: EncoderConfig) -> nn.Module:
    """Build the encoder from a preset, a saved ``hf_config``, or ``from_pretrained`` (hub id or directory).

    After this, ``cfg.hf_config`` holds the resolved ``transformers`` config so that a saved model
    directory rebuilds the same encoder with no hub access.
    """
    config = _hf_config(cfg)
    config._attn_implementation = "sdpa"
    if cfg.pretrained and cfg.hf_config is None:
        # Loads weights of a bare encoder or of a *ForCTC / *ForPreTraining checkpoint (prefix stripped).
        encoder = AutoModel.from_pretrained(cfg.pretrained, config=config)
    else:
        encoder = AutoModel.from_config(config)
    if cfg.freeze_feature_encoder:
        encoder.freeze_feature_encoder()
    values = encoder.config.to_dict()
    for key in ("_name_or_path", "transformers_version", "architectures", "auto_map", "_attn_implementation_autoset"):
        values.pop(key, None)
    cfg.hf_config = values
    return encoder


def output_lengths(encoder: nn.Module, lengths: torch.Tensor) -> torch.Tensor:
    """Frames the encoder produces for inputs of ``lengths`` samples: ``(B,) -> (B,)``. The one place
    this is computed; everything that pairs frames with lengths calls it."""
    return encoder._get_feat_extract_output_lengths(lengths).to(torch.long)


def frame_hop(encoder: nn.Module, sample_rate: int = 16000) -> float:
    """Seconds between consecutive encoder frames (the product of the conv strides)."""
    return math.prod(encoder.config.conv_stride) / sample_rate


def frame_shift(encoder: nn.Module, sample_rate: int = 16000) -> float:
    """Seconds to add to ``t * hop`` so that frame ``t`` spans ``hop`` seconds centred on the middle of
    its conv receptive field (frame ``t`` reads samples ``[t * stride, t * stride + field)``)."""
    field, jump = 1, 1
    for kernel, stride in zip(encoder.config.conv_kernel, encoder.config.conv_stride):
        field, jump = field + (kernel - 1) * jump, jump * stride
    return (field - 1) / 2 / sample_rate - frame_hop(encoder, sample_rate) / 2


def frame_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True on real (non-padded) positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _features(encoder: nn.Module, waveforms: torch.Tensor, lengths: torch.Tensor, batched: bool) -> torch.Tensor:
    # GroupNorm in the first conv layer (wav2vec2-base style) normalises over time, so zero padding
    # would change every frame: such front ends run one utterance at a time at inference.
    group_norm = getattr(encoder.config, "feat_extract_norm", "layer") == "group"
    if batched or not group_norm or encoder.training or waveforms.shape[0] == 1:
        return encoder.feature_extractor(waveforms).transpose(1, 2)
    parts = [encoder.feature_extractor(w[None, :n]).transpose(1, 2)[0] for w, n in zip(waveforms, lengths.tolist())]
    return nn.utils.rnn.pad_sequence(parts, batch_first=True)


def encode_audio(encoder: nn.Module, waveforms: torch.Tensor, lengths: torch.Tensor, batched_frontend: bool = False):
    """Run the encoder on padded, normalised waveforms.

    Args:
        waveforms: ``(B, S)`` float, zero-padded.
        lengths: ``(B,)`` number of real samples per row.
        batched_frontend: run a GroupNorm front end over the padded batch at once (exact only for rows
            of equal length; the ONNX export's graph, whose runtime feeds such models one at a time).
    Returns:
        ``(frames (B, T, H), frame_lengths (B,))``; frames past a row's length are padding.
    """
    features = _features(encoder, waveforms, lengths, batched_frontend)
    frame_lengths = output_lengths(encoder, lengths)
    mask = frame_mask(frame_lengths, features.shape[1])
    projected = encoder.feature_projection(features)
    hidden = projected[0] if isinstance(projected, tuple) else projected
    hidden = encoder._mask_hidden_states(hidden, attention_mask=mask)
    out = encoder.encoder(hidden, attention_mask=mask)
    return out.last_hidden_state, frame_lengths

