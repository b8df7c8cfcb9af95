"""The wav2vec2-family audio encoder (wav2vec2, HuBERT, WavLM from ``transformers``).

The encoder is the ``transformers`` model itself, so any checkpoint of those families loads into it
unchanged; the functions here add what speechtext needs around it: size presets, the one function
that maps sample lengths to frame lengths, and a forward that takes ``(waveforms, lengths)``.
"""
from __future__ import annotations

import math
import warnings

import torch
import torchaudio.functional as AF
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


FRONTENDS = ("conv", "mel")
# The log-mel front end's geometry written as the conv layers it replaces: a 400-sample window every
# 160 samples (the STFT, no centring) then two 3-wide convs, the second striding 2, so that
# transformers' own length formula, frame_hop and frame_shift stay exact for it.
MEL_GEOMETRY = dict(conv_kernel=[400, 3, 3], conv_stride=[160, 1, 2])
MEL_BANDS = 80


class MelFrontend(nn.Module):
    """Log-mel front end in place of wav2vec2's learned conv on raw samples: 80 bands of a 25 ms
    Hann-windowed DFT every 10 ms up to ``max_hz``, each utterance's mean per band subtracted
    (``mean_norm``), then two convolutions to ``channels`` at 20 ms.

    The DFT is a fixed strided convolution (exports to ONNX as one Conv), computed in fp32 under any
    autocast. A small model trained from nothing learns from these features in far fewer steps than
    from raw-sample convolutions, and the mean subtraction cancels a fixed colouring of the channel
    (another synthesiser, a telephone line). ``max_hz=4000`` makes 16 kHz training audio and
    8 kHz telephone audio look alike.
    """

    def __init__(self, channels: int, max_hz: float = 8000.0, mean_norm: bool = True, sample_rate: int = 16000):
        super().__init__()
        n_fft, self.hop = MEL_GEOMETRY["conv_kernel"][0], MEL_GEOMETRY["conv_stride"][0]
        if not 0 < max_hz <= sample_rate / 2:
            raise ConfigError(f"model.encoder.mel_max_hz: {max_hz} is outside (0, {sample_rate // 2}]")
        freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * freqs * torch.arange(n_fft, dtype=torch.float64)[None, :] / n_fft
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        dft = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])[:, None, :]
        self.register_buffer("dft", dft.float(), persistent=False)  # (2F, 1, n_fft)
        with warnings.catch_warnings():  # below ~4 kHz the lowest bands are narrower than a DFT bin: empty, harmless
            warnings.simplefilter("ignore", UserWarning)
            fbank = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, float(max_hz), MEL_BANDS, sample_rate)
        self.register_buffer("fbank", fbank.T.contiguous(), persistent=False)  # (n_mels, F)
        self.mean_norm = mean_norm
        self.conv1 = nn.Conv1d(MEL_BANDS, channels, 3)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2)

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` waveforms -> ``(B, 80, T)`` natural-log mel energies at 10 ms (no centring)."""
        with torch.autocast(waveforms.device.type, enabled=False):
            spec = nn.functional.conv1d(waveforms.float()[:, None], self.dft, stride=self.hop)
            real, imag = spec.chunk(2, dim=1)
            return torch.log(torch.matmul(self.fbank, real * real + imag * imag) + 1e-4)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, S)`` waveforms and ``(B,)`` sample lengths -> ``(B, channels, T)`` at 20 ms, as wav2vec2's
        feature extractor. Without lengths every row counts as real to its end."""
        feats = self.log_mel(waveforms)
        if self.mean_norm:
            if lengths is None:
                lengths = torch.full(waveforms.shape[:1], waveforms.shape[1], device=waveforms.device)
            frames = torch.div(lengths - MEL_GEOMETRY["conv_kernel"][0], self.hop, rounding_mode="floor") + 1
            real = frame_mask(frames.clamp(min=1), feats.shape[-1])[:, None, :].to(feats.dtype)
            mean = (feats * real).sum(-1, keepdim=True) / real.sum(-1, keepdim=True)
            feats = (feats - mean) * real
        x = nn.functional.gelu(self.conv1(feats * 0.25))  # log-mel values span ~20: bring them near unit scale
        return nn.functional.gelu(self.conv2(x))

    def _freeze_parameters(self):  # the name transformers' freeze_feature_encoder() calls
        for param in self.parameters():
            param.requires_grad = False


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
    if cfg.frontend not in FRONTENDS:
        raise ConfigError(f"model.encoder.frontend: '{cfg.frontend}' is not one of {', '.join(FRONTENDS)}")
    if cfg.frontend == "mel" and cfg.pretrained and cfg.hf_config is None:
        raise ConfigError("model.encoder.frontend: mel is for encoders trained from nothing; a pretrained "
                          f"checkpoint ({cfg.pretrained}) was trained on its own conv front end: use frontend: conv")
    config = _hf_config(cfg)
    config._attn_implementation = "sdpa"
    if cfg.frontend == "mel" and cfg.hf_config is None:
        channels = config.conv_dim[-1]
        config.conv_dim, config.num_feat_extract_layers = [MEL_BANDS, channels, channels], 3
        config.conv_kernel, config.conv_stride = list(MEL_GEOMETRY["conv_kernel"]), list(MEL_GEOMETRY["conv_stride"])
    if cfg.pretrained and cfg.hf_config is None:
        # Loads weights of a bare encoder or of a *ForCTC / *ForPreTraining checkpoint (prefix stripped).
        encoder = AutoModel.from_pretrained(cfg.pretrained, config=config)
    else:
        encoder = AutoModel.from_config(config)
    if cfg.frontend == "mel":
        encoder.feature_extractor = MelFrontend(encoder.config.conv_dim[-1], cfg.mel_max_hz, cfg.mel_mean_norm)
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
    if isinstance(encoder.feature_extractor, MelFrontend):  # its mean over each row's own frames
        return encoder.feature_extractor(waveforms, lengths).transpose(1, 2)
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

