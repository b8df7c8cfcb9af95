"""The BERT-family text encoder (``transformers``), from a size preset or ``from_pretrained``."""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, BertConfig

from ..config import ConfigError, TextEncoderConfig
from .audio_encoder import frame_mask

TEXT_PRESETS = {
    # Enough for command phrases on a CPU; the vocabulary size comes from the trained tokenizer.
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512,
                 max_position_embeddings=128, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
    "base": dict(),  # bert-base shapes
}


def build_text_encoder(cfg: TextEncoderConfig, vocab_size: int) -> nn.Module:
    """Build the encoder (no pooler: speechtext pools itself) and record its resolved config in ``cfg``."""
    if cfg.hf_config is not None:
        values = dict(cfg.hf_config)
        config = AutoConfig.for_model(values.pop("model_type", "bert"), **values)
        encoder = AutoModel.from_config(config, add_pooling_layer=False)
    elif cfg.pretrained:
        encoder = AutoModel.from_pretrained(cfg.pretrained, add_pooling_layer=False)
    elif cfg.preset in TEXT_PRESETS:
        encoder = AutoModel.from_config(BertConfig(**{**TEXT_PRESETS[cfg.preset], **cfg.overrides, "vocab_size": vocab_size}),
                                        add_pooling_layer=False)
    else:
        raise ConfigError(f"model.text_encoder: unknown preset '{cfg.preset}'; choose one of {', '.join(TEXT_PRESETS)}")
    if encoder.config.vocab_size < vocab_size:
        raise ConfigError(f"model.text_encoder: the encoder has {encoder.config.vocab_size} token embeddings, "
                          f"the tokenizer {vocab_size} tokens")
    values = encoder.config.to_dict()
    for key in ("_name_or_path", "transformers_version", "architectures"):
        values.pop(key, None)
    cfg.hf_config = values
    return encoder


def encode_text(encoder: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``ids (B, L)`` with ``lengths (B,)`` -> token states ``(B, L, H)``; padded positions are masked."""
    mask = frame_mask(lengths, ids.shape[1])
    return encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
