"""Configuration dataclasses. YAML files hold plain values only; every object is built in code.

A config file has sections named after the dataclasses below (``model:``, ``train:``, ``data:``);
unknown keys are errors that name the file and the key, so a typo never passes silently.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad configuration value or file; the message names the file and the key."""


@dataclass
class EncoderConfig:
    """The wav2vec2-family audio encoder: a size preset, or a pretrained hub id / local directory.

    ``overrides`` are plain ``transformers`` config values applied on top (e.g. ``mask_time_prob``).
    ``hf_config`` is filled in when a model is saved, so a model directory rebuilds without the hub.
    """

    preset: str = "tiny"
    pretrained: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    frontend: str = "conv"  # conv: wav2vec2's own on raw samples; mel: log-mel + 2 convs (from nothing only)
    mel_max_hz: float = 8000.0  # frontend mel: top of the filterbank (4000: the telephone band)
    mel_mean_norm: bool = True  # frontend mel: subtract each utterance's mean log-mel per band
    freeze_feature_encoder: bool = False
    hf_config: dict[str, Any] | None = None


@dataclass
class TextEncoderConfig:
    """A BERT-family text encoder: a size preset, or a pretrained hub id / local directory (whose
    tokenizer is then used). Without ``pretrained`` a WordPiece vocabulary of ``vocab_size`` is
    trained on the training transcripts. ``hf_config`` is filled in when a model is saved."""

    preset: str = "tiny"
    pretrained: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 1000
    hf_config: dict[str, Any] | None = None


@dataclass
class FusionConfig:
    """The cross-attention block: text-side queries attend over audio frames."""

    dim: int = 192
    layers: int = 2
    heads: int = 4
    ff_dim: int = 512
    # On CPU, dropout above 0 sends the attention over frames down SDPA's unfused path: the recipe's step
    # took 1.15x the time with 0.1 (README "Twice the training"). Its runs of minutes leave it at 0.
    dropout: float = 0.1


@dataclass
class MelConfig:
    """The one log-mel feature of synthesis: its training targets and what the vocoder inverts."""

    n_fft: int = 1024
    hop_length: int = 160  # 10 ms: two mel frames per 20 ms encoder frame
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    floor: float = 1e-5  # magnitude floor before the log (-11.5 in log units is silence)


@dataclass
class SynthesisConfig:
    """The synthesis conditioning head: text (recogniser tokens, with the text encoder's states fused
    over a reference recording) -> token durations -> log-mel frames, and the reference's speaker vector."""

    mel: MelConfig = field(default_factory=MelConfig)
    dim: int = 192
    encoder_layers: int = 3  # conv blocks over the tokens, before the duration predictor
    decoder_layers: int = 4  # conv blocks over the mel frames
    kernel_size: int = 5
    postnet_layers: int = 3
    speaker_dim: int = 128
    num_speakers: int = 0  # training voices the speaker vector is trained to separate (set from the data)
    dropout: float = 0.1
    duration_weight: float = 1.0  # of the log-duration loss, beside the L1 mel losses
    speaker_weight: float = 0.5  # of the speaker classification loss
    pitch: bool = True  # predict each token's F0 and voicing and condition the mel decoder on it (FastPitch)
    pitch_weight: float = 1.0  # of the pitch and voicing losses
    speaker_film: bool = True  # the speaker vector scales and shifts every decoder layer's input (else: the first's)
    max_seconds: float = 20.0  # a text whose predicted duration exceeds this is refused
    vocoder: str = "griffin-lim"
    griffin_lim_iters: int = 32


@dataclass
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    text_encoder: TextEncoderConfig | None = None  # None: an audio-only model
    fusion: FusionConfig = field(default_factory=FusionConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)  # used with the synthesis head
    embed_dim: int = 256  # the shared speech-text embedding space
    loss_weights: dict[str, float] = field(default_factory=lambda: {"ctc": 1.0, "contrastive": 0.5, "command": 0.5,
                                                                      "intent": 0.5})
    heads: list[str] = field(default_factory=lambda: ["ctc"])  # ctc, attention, command, synthesis
    ctc_weight: float = 0.3  # with an attention head: loss = w * ctc + (1 - w) * attention (ESPnet's mtlalpha)
    label_smoothing: float = 0.1  # of the attention decoder's cross-entropy
    ctc_dropout: float = 0.1
    normalize_waveform: bool = True  # zero mean, unit variance per utterance (wav2vec2's do_normalize)
    # Closed-set intents named by "_"-separated parts (action_object_location, as Fluent Speech Commands):
    # each part two or more intents share gets learned weights too, so a rare combination learns from
    # the common parts. Off: one independent class per intent.
    intent_parts: bool = False
    # The recogniser's units (CTC, attention decoder, LM, synthesis input): 0 = characters; N = the
    # characters plus N word pieces learned by byte-pair encoding over the training text. On a closed
    # vocabulary, enough merges make every word one unit, and CTC can no longer misspell it.
    bpe_merges: int = 0
    # a doubled letter (ee, ll, zz) as one unit: CTC must put a blank between two equal outputs, and a
    # model trained briefly drops it (feet -> fet); applied before any bpe_merges
    double_letters: bool = False

    def __post_init__(self):
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be between 0 and 1, got {self.ctc_weight}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.bpe_merges < 0:
            raise ValueError(f"bpe_merges must be 0 (characters) or more, got {self.bpe_merges}")


@dataclass
class DataConfig:
    """How batches are formed and augmented during training."""

    max_batch_seconds: float = 60.0
    max_utterance_seconds: float = 30.0
    bucket_width: float = 0.5
    # [low, high]: a speed factor drawn uniformly (resampling: tempo, pitch and formants move together);
    # [] turns it off. Kaldi's recipes use the three points 0.9, 1.0, 1.1.
    speed_perturb: list[float] = field(default_factory=lambda: [0.9, 1.1])
    noise_snr_db: list[float] = field(default_factory=lambda: [15.0, 40.0])
    noise_prob: float = 0.5
    gain_db: float = 6.0
    eq_prob: float = 0.0  # random peaking filters (+-12 dB) and spectral tilt
    lowpass_prob: float = 0.0  # band-limit to 3.4-7.5 kHz, as telephone or 8 kHz sources are
    reverb_prob: float = 0.0  # synthetic room impulse response, RT60 0.1-0.5 s
    silence_pad: float = 0.0  # up to this many seconds of (noisy) silence before and after the speech
    pitch_prob: float = 0.0  # move F0 (formants kept; tempo moves with it) by a draw from pitch_semitones
    pitch_semitones: list[float] = field(default_factory=lambda: [-4.0, 4.0])
    formant_prob: float = 0.0  # vocal-tract-length warp of the spectral envelope (F0 kept) by a draw from formant_warp
    formant_warp: list[float] = field(default_factory=lambda: [0.88, 1.12])
    telephone_prob: float = 0.0  # 8 kHz, 300-3400 Hz band, mu-law or GSM 06.10 codec, back to 16 kHz
    num_workers: int = 1
    command_negatives: int = 7  # other commands of the batch each utterance is scored against
    # synthesis training with a frozen audio encoder: its frames of every utterance (the references) are
    # computed once and kept in memory when they fit in this many MB (0: encode the references at every step)
    reference_cache_mb: float = 2048.0


@dataclass
class TrainConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 500
    max_steps: int = 0
    max_epochs: int = 20
    max_minutes: float = 0.0  # > 0: end within this wall-clock time, max_steps at most (speechtext.schedule)
    final_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    accum_grad: int = 1
    amp: str = "auto"
    seed: int = 1234
    log_interval: int = 20
    valid_interval: int = 0
    save_interval: int = 200
    keep_checkpoints: int = 5
    average_best: int = 3
    num_threads: int = 0
    task: str = "recognition"  # recognition (every head but synthesis) | synthesis (the synthesis head's batches)
    init_from: str = ""  # a model directory whose model (config, tokenizers, weights) this run extends with model.heads
    trainable: list[str] = field(default_factory=list)  # parameter-name prefixes that train; []: all

    def __post_init__(self):
        if self.task not in ("recognition", "synthesis"):
            raise ValueError(f"task must be recognition or synthesis, not {self.task!r}")


@dataclass
class TranscribeOptions:
    """Options of :meth:`SpeechTextPipeline.transcribe`; the CLI's defaults come from here."""

    decoder: str = "greedy"  # greedy (CTC best path) | ctc (CTC prefix beam search) | attention | joint (CTC/attention)
    beam_size: int = 8
    ctc_weight: float = 0.3  # joint decoding: weight of the CTC prefix score against the attention decoder
    lm: str = ""  # an LM directory (speechtext lm train) or an ARPA / KenLM binary file, for shallow fusion
    lm_weight: float = 0.3
    batch_seconds: float = 160.0  # padded audio per batch
    # A batch takes inputs no shorter than (1 - max_padding) x its longest: padded frames cost as much
    # as real ones (160 s batches of 1-8 s files were 25 % padding); 1.0 packs by batch_seconds alone.
    max_padding: float = 0.1
    precision: str = "auto"  # auto (bf16 where the CPU/GPU has native bf16) | fp32 | bf16
    max_seconds: float = 36000.0  # longer inputs are refused with a clear error
    chunk_seconds: float = 30.0  # longer inputs are transcribed in overlapping chunks of this length
    stride_seconds: float = 5.0  # context dropped at each inner chunk edge; under chunk_seconds / 2
    timestamps: str = "none"  # none | word (CTC forced alignment)
    num_threads: int = 0  # 0: torch's default


INTENT_SOURCES = ("audio", "transcript", "both")


@dataclass
class CommandOptions:
    """Options of voice-command recognition and text search; the CLI's defaults come from here."""

    threshold: float | None = None  # answer <none> below this audio-command cosine
    acoustic_weight: float = 1.0  # weight of the CTC log-likelihood of a command's spelling; 0: fusion + cosine only
    # closed-set intents: the intent head (audio), the transcript intent classifier on what the
    # recogniser heard with the TranscribeOptions' decoder (transcript), or their posteriors multiplied
    # (both; a model saved without the transcript classifier uses the audio alone)
    intent_from: str = "both"  # one of INTENT_SOURCES
    shortlist: int = 50  # text search: candidates (half by the CTC best path's spelling, half by the shared space) re-scored in full


@dataclass
class SynthesisOptions:
    """Options of :meth:`SpeechTextPipeline.synthesize`; the CLI's defaults come from here."""

    speed: float = 1.0  # > 1 speaks faster: every predicted duration is divided by it
    pitch_shift: float = 0.0  # semitones added to every predicted F0 (models with synthesis.pitch)
    batch_size: int = 16  # texts synthesised together
    min_reference_seconds: float = 1.0  # shorter references are refused: too little of the voice to copy
    max_reference_seconds: float = 60.0
    griffin_lim_iters: int = 0  # 0: the model's synthesis.griffin_lim_iters
    precision: str = "auto"  # of the encoders; the mel decoder and the vocoder run in fp32
    num_threads: int = 0


@dataclass
class LMConfig:
    """The external token LM (``speechtext lm train``, :mod:`speechtext.lm`)."""

    embed_dim: int = 128
    hidden_size: int = 256
    layers: int = 2
    dropout: float = 0.1
    lr: float = 2e-3
    steps: int = 2000
    batch_size: int = 64
    seed: int = 0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key '{key}'; valid keys: {', '.join(sorted(fields))}")
        sub = fields[key].type
        name = sub.split("|")[0].strip() if isinstance(sub, str) else getattr(sub, "__name__", "")
        target = NESTED.get(name)
        kwargs[key] = _build(target, value, f"{where}.{key}") if target and value is not None else value
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # ValueError: a range check in __post_init__
        raise ConfigError(f"{where}: {exc}") from exc
    _check_types(obj, where)
    return obj


def _check_types(obj, where: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(default) or default is None or value is None:
            continue
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if numeric and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise ConfigError(f"{where}.{f.name}: expected a number, got {value!r}")
        if not numeric and not isinstance(value, type(default)):
            raise ConfigError(f"{where}.{f.name}: expected {type(default).__name__}, got {value!r}")


NESTED = {c.__name__: c for c in (EncoderConfig, TextEncoderConfig, FusionConfig, MelConfig, SynthesisConfig, ModelConfig,
                                  DataConfig, TrainConfig)}


def config_from_dict(values: dict, where: str = "config") -> Config:
    return _build(Config, values or {}, where)


# Fields added to the model config since format 1 of model directories, with the value that rebuilds
# a model saved before them: a saved config is resolved (it lists every field it had), so a field it
# lacks came later, and its default (what new runs get) may not be what that model was trained with.
_SAVED_BEFORE = {("model", "synthesis", "pitch"): False, ("model", "synthesis", "speaker_film"): False}


def config_from_saved(values: dict, where: str) -> Config:
    """The config of a model directory (``values`` read from its config.yaml): as :func:`config_from_dict`,
    with the fields it predates set to what its model was trained with."""
    values = json.loads(json.dumps(values or {}))
    for *parents, leaf in _SAVED_BEFORE:
        node = values
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(leaf, _SAVED_BEFORE[(*parents, leaf)])
    return config_from_dict(values, where)


class _YAMLLoader(yaml.SafeLoader):
    """The safe loader (plain values only), also reading ``1e-3`` as a number: YAML 1.1 wants ``1.0e-3``,
    so PyYAML alone gives the string '1e-3', which a number-typed key then rejects."""


_YAMLLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                  list("-+0123456789"))


def read_yaml(stream, where: str):
    """A config's YAML text or open file -> plain values (mappings, lists, strings, numbers); a
    :class:`ConfigError` naming ``where`` if it is not YAML."""
    try:
        return yaml.load(stream, Loader=_YAMLLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc


def parse_overrides(items, where: str = "--set") -> dict:
    """``["train.lr=1e-3", ...]`` -> ``{"train.lr": 0.001, ...}`` for :func:`load_config`: each item is split
    at its first ``=`` and the value read as YAML (plain values only), as a config file's would be."""
    overrides = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"{where}: expected KEY=VALUE (e.g. train.lr=1e-3), got {item!r}")
        overrides[key.strip()] = read_yaml(value, f"{where} {key.strip()}")
    return overrides


def load_config(path: str, overrides: dict | None = None) -> Config:
    """Read a YAML config (safe loader: plain values only) and apply dotted ``overrides``."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = read_yaml(handle, path) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror})") from exc
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config_from_dict(values, where=path)


def config_to_dict(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def save_config(config, path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config_to_dict(config), handle, sort_keys=False)
