"""Import Hugging Face CTC checkpoints (``Wav2Vec2ForCTC``, ``HubertForCTC``, ``WavLMForCTC``): a hub id
or a local directory with ``config.json``, weights and ``vocab.json``. The result is an ordinary
speechtext model whose transcripts equal the ``transformers`` ASR pipeline's (special tokens that
the pipeline leaves in its text, such as ``<s>``, are dropped)."""
from __future__ import annotations

import json
import os

from .config import Config, EncoderConfig, ModelConfig
from .tokenizer import CharTokenizer


def looks_like_hf_ctc(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(os.path.join(path, "vocab.json"))


def read_hf_tokenizer(path: str) -> CharTokenizer:
    """The CTC character vocabulary of a local HF checkpoint directory (``vocab.json`` + tokenizer config)."""
    config = {}
    config_file = os.path.join(path, "tokenizer_config.json")
    if os.path.exists(config_file):
        with open(config_file, encoding="utf-8") as handle:
            config = json.load(handle)
    return CharTokenizer.from_hf_vocab(os.path.join(path, "vocab.json"), config)


def _tokenizer_from_hub(name: str) -> CharTokenizer:
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(name)
    tokens = [t for t, _ in sorted(hf.get_vocab().items(), key=lambda kv: kv[1])]
    return CharTokenizer(tokens, blank=hf.pad_token, unk=hf.unk_token,
                         word_delimiter=getattr(hf, "word_delimiter_token", "|"), lowercase=getattr(hf, "do_lower_case", False))


def import_hf_ctc(name_or_path: str):
    """Load an HF ``*ForCTC`` checkpoint as ``(SpeechTextModel, tokenizer, Config)``."""
    from transformers import AutoModelForCTC

    from .checkpoint import build_model

    hf_model = AutoModelForCTC.from_pretrained(name_or_path)
    base = getattr(hf_model, hf_model.base_model_prefix)
    tokenizer = read_hf_tokenizer(name_or_path) if os.path.isdir(name_or_path) else _tokenizer_from_hub(name_or_path)
    if tokenizer.vocab_size != hf_model.lm_head.out_features:
        raise ValueError(f"{name_or_path}: vocab.json has {tokenizer.vocab_size} tokens but the CTC head "
                         f"has {hf_model.lm_head.out_features} outputs")
    values = base.config.to_dict()
    for key in ("_name_or_path", "transformers_version", "architectures"):
        values.pop(key, None)
    encoder = EncoderConfig(pretrained=name_or_path, hf_config=values)
    from transformers import AutoFeatureExtractor

    normalise = getattr(AutoFeatureExtractor.from_pretrained(name_or_path), "do_normalize", True)
    config = Config(model=ModelConfig(encoder=encoder, heads=["ctc"], ctc_dropout=base.config.final_dropout,
                                      normalize_waveform=bool(normalise)))
    model = build_model(config, tokenizer)
    model.audio_encoder.load_state_dict(base.state_dict(), strict=True)
    model.heads["ctc"].proj.load_state_dict(hf_model.lm_head.state_dict(), strict=True)
    return model.eval(), tokenizer, config
