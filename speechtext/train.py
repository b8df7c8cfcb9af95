"""Training: ``speechtext train`` and :func:`train`.

One process per device; under ``torchrun`` the processes form a DDP group (NCCL on GPUs, gloo on
CPU). Rank 0 writes the log, the loss curve and atomic checkpoints; ``resume=True`` continues a
killed run from ``last.pt`` at the exact batch it had reached. At the end the best
``average_best`` epoch checkpoints (by dev WER) are averaged into ``<out_dir>/final``.

Preemption: SIGTERM or SIGUSR1 (Slurm's warning signal, ``sbatch --signal=USR1@120``) makes every
rank stop at the next step boundary (the ranks agree on the step through one all-reduce per step),
write ``last.pt`` and exit with :data:`PREEMPTED_EXIT` (75, ``EX_TEMPFAIL``), which tells the job
script to requeue; the requeued run resumes with ``--resume`` exactly there, so no step runs twice.
"""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from .batching import BatchLoader, RunSampler, utterance_durations
from .checkpoint import (CheckpointError, average_state_dicts, build_model, load_checkpoint, save_checkpoint,
                         save_model_dir)
from .config import Config, ConfigError, config_from_saved, config_to_dict, save_config
from .data import read_data_dir
from .decode import ctc_greedy
from .distributed import Context, rank0_value, setup_distributed
from .intent_text import run_classifier
from .models.audio_encoder import frame_hop
from .precision import bf16_supported
from .plots import plot_loss_curve
from .schedule import FINISH_SECONDS, TrainClock, budget_steps, lr_lambda
from .score import error_rates
from .tokenizer import make_tokenizer, tokenizer_from_dict

log = logging.getLogger("speechtext.train")
PREEMPTED_EXIT = 75  # EX_TEMPFAIL: "try again later"; the job script requeues on it
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """Training stopped on a preemption signal after writing ``last.pt``; resume with ``--resume``."""


LOGGED_LOSSES = ("ctc", "attention", "contrastive", "command", "intent", "mel", "postnet", "duration", "speaker")


def _ignore_preemption_signals(_worker_id: int) -> None:
    # Slurm signals every process of the job step: a data worker must not die of it (the main
    # process finishes the step, checkpoints and shuts the workers down itself).
    for sig in PREEMPTION_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def resolve_amp(amp: str, device: torch.device) -> str:
    """The precision ``train.amp`` runs in on ``device``: ``none``, ``bf16`` or ``fp16``.

    ``auto`` takes bf16 on a GPU that has it, fp16 on older GPUs, and fp32 (``none``) on every CPU:
    without native bf16 the autocast is emulated (about 16x slower than fp32), and with it the models
    here still trained slower than in fp32 on every CPU measured (README "Training precision").
    ``bf16`` asked for on a CPU runs, with a warning where it is emulated."""
    if amp not in ("auto", "none", "bf16", "fp16"):
        raise ConfigError(f"train.amp: '{amp}' is not one of auto, none, bf16, fp16")
    native = bf16_supported(device)
    if amp == "auto":
        if device.type != "cuda":
            return "none"
        return "bf16" if native else "fp16"
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp: fp16 needs a GPU; use bf16 or none on CPU")
    if amp == "bf16" and not native:
        log.warning("train.amp: bf16 is forced on a %s without native bf16; it is emulated there and can be "
                    "~16x slower than fp32 (train.amp=auto or none avoids that)", device.type.upper())
    return amp


def amp_settings(amp: str) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use GradScaler)`` for a resolved precision (see :func:`resolve_amp`)."""
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp], amp == "fp16"


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
            "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
            "numpy_gauss": [int(np_state[3]), float(np_state[4])]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], *state["numpy_gauss"]))


@torch.no_grad()
def validate(model, loader, tokenizer, ctx: Context, autocast_dtype) -> dict:
    """Dev loss and greedy-CTC WER/CER; summed over ranks under DDP."""
    model.eval()
    refs, hyps, loss_sum, utts = [], [], 0.0, 0
    for batch in loader:
        if not batch["weight"]:
            continue  # a rank's stand-in item (see EpochBatches.share)
        with _autocast(ctx.device, autocast_dtype):
            log_probs, frame_lengths = model.ctc_log_probs(batch["waveforms"].to(ctx.device), batch["lengths"].to(ctx.device))
        ctc = model.heads["ctc"].loss(log_probs, frame_lengths, batch["targets"].to(ctx.device), batch["target_lengths"].to(ctx.device))
        loss_sum += float(ctc)
        utts += len(batch["utt_ids"])
        hyps += [tokenizer.decode(ids) for ids in ctc_greedy(log_probs, frame_lengths, tokenizer.blank_id)]
        refs += [tokenizer.decode(t[:n]) for t, n in zip(batch["targets"].tolist(), batch["target_lengths"].tolist())]
    if ctx.world_size > 1:
        gathered = [None] * ctx.world_size
        dist.all_gather_object(gathered, (refs, hyps, loss_sum, utts))
        refs, hyps = sum((g[0] for g in gathered), []), sum((g[1] for g in gathered), [])
        loss_sum, utts = sum(g[2] for g in gathered), sum(g[3] for g in gathered)
    model.train()
    rates = error_rates(refs, hyps)
    return {"loss": loss_sum / max(1, utts), "wer": rates["wer"], "cer": rates["cer"]}


def _autocast(device, dtype):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _setup_logging(out_dir: str, main: bool) -> None:
    """Log to ``<out_dir>/train.log`` and stderr (rank 0 only), replacing an earlier run's handlers."""
    log.setLevel(logging.INFO)
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    if main:
        handler = logging.FileHandler(os.path.join(out_dir, "train.log"))
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.addHandler(logging.StreamHandler())


def make_text_vocabularies(config: Config, train_data):
    """``(text tokenizer, intent labels)`` for a model with a text encoder, else ``(None, None)``."""
    cfg = config.model.text_encoder
    if cfg is None:
        return None, None
    from .text_tokenizer import TextTokenizer

    texts = [u.text for u in train_data if u.text]
    text_tokenizer = TextTokenizer.from_pretrained(cfg.pretrained) if cfg.pretrained else TextTokenizer.train(texts, cfg.vocab_size)
    intents = sorted({u.intent for u in train_data if u.intent}) if "command" in config.model.heads else []
    return text_tokenizer, intents or None


def extend_model(config: Config, speakers: list[str]):
    """A fresh run that extends the model directory ``config.train.init_from``: its model config with
    this run's heads added and its synthesis settings, its tokenizers and intents, and its weights.
    Returns ``(config, tokenizer, text_tokenizer, intents, weights)``."""
    import dataclasses

    from .checkpoint import read_model_dir, read_text_vocabularies

    source = config.train.init_from
    init_config, tokenizer, weights = read_model_dir(source)
    text_tokenizer, intents = read_text_vocabularies(source)
    heads = init_config.model.heads + [h for h in config.model.heads if h not in init_config.model.heads]
    synthesis = dataclasses.replace(config.model.synthesis, num_speakers=len(speakers))
    model = dataclasses.replace(init_config.model, heads=heads, synthesis=synthesis)
    return dataclasses.replace(config, model=model), tokenizer, text_tokenizer, intents, weights


def load_init_weights(model, weights: dict, source: str) -> None:
    """Load ``weights`` strictly, except for the parameters of heads the source model did not have."""
    result = model.load_state_dict(weights, strict=False)
    new_heads = {k.split(".")[1] for k in result.missing_keys if k.startswith("heads.")}
    stray = [k for k in result.missing_keys if not k.startswith("heads.")] + list(result.unexpected_keys)
    if stray:
        raise CheckpointError(f"{source}: its weights do not fit this model (e.g. {stray[0]}); "
                              "train.init_from must be a model of the same architecture")
    log.info("initialised from %s; new heads: %s", source, ", ".join(sorted(new_heads)) or "none")


def set_trainable(model, prefixes: list[str]) -> list:
    """Freeze every parameter whose name starts with none of ``prefixes`` ([]: train all); returns
    the trained parameters (see :func:`train_mode` for their modules' dropout)."""
    dotted = tuple(prefix.rstrip(".") + "." for prefix in prefixes)  # whole names: heads.synth is not heads.synthesis
    # left out too: what the model froze when it was built (model.encoder.freeze_feature_encoder) and what
    # no step uses under this config
    skipped = _unused_parameters(model) | {id(p) for p in model.parameters() if not p.requires_grad}
    params = [p for name, p in model.named_parameters()
              if (not prefixes or name.startswith(dotted)) and id(p) not in skipped]
    if not params:
        raise ConfigError(f"train.trainable: {prefixes} matches no parameter; use names like heads.synthesis")
    chosen = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    return params


def _unused_parameters(model) -> set[int]:
    """Parameters no training step uses under this config: wav2vec2's mask embedding when SpecAugment's
    time masks are off. Left trainable, DDP would wait for their gradients forever (or fail)."""
    unused = set()
    for module in model.modules():
        hf = getattr(module, "config", None)
        embed = getattr(module, "masked_spec_embed", None)
        if isinstance(embed, torch.nn.Parameter) and not (getattr(hf, "apply_spec_augment", True)
                                                          and getattr(hf, "mask_time_prob", 0) > 0):
            unused.add(id(embed))
    return unused


def may_skip_parameters(config: Config) -> bool:
    """Whether a step may leave some parameters without a gradient, differently on each rank: LayerDrop
    skips encoder layers at random, and the command and intent losses need batch contents (command pairs,
    intent labels) that a rank's share may lack. DDP must then look for unused parameters each step."""
    layerdrop = config.model.encoder.overrides.get("layerdrop", (config.model.encoder.hf_config or {}).get("layerdrop", 0))
    return bool(layerdrop) or config.model.text_encoder is not None


def train_mode(model) -> None:
    """``model.train()``, except that modules whose parameters are all frozen stay in eval mode: a
    frozen encoder must give the frames it gives at inference (no dropout, no time masking)."""
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()


class Trainer:
    def __init__(self, config: Config, train_dir: str, valid_dir: str, out_dir: str, resume: bool = False):
        self.clock = TrainClock()  # from here: a time budget counts the setup too
        self.ctx = ctx = setup_distributed()
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        _setup_logging(out_dir, ctx.main)
        last = os.path.join(out_dir, "last.pt")
        if resume and not os.path.exists(last):
            raise CheckpointError(f"{out_dir}: nothing to resume (no last.pt); start without --resume")
        if not resume and os.path.exists(last):
            raise CheckpointError(f"{out_dir}: holds a run already (last.pt); pass --resume to continue it, "
                                  "or choose another --out-dir")
        state = load_checkpoint(last) if resume else None
        if resume and ctx.main:
            log.info("resuming from %s at step %d", os.path.join(out_dir, "last.pt"), state["step"])
        if state:  # the killed run's own config, so that the resumed run is the same run
            config = config_from_saved(json.loads(state["config"]), where=os.path.join(out_dir, "last.pt"))
        self.config = config
        tc = config.train
        if tc.num_threads:
            torch.set_num_threads(tc.num_threads)
        torch.manual_seed(tc.seed), random.seed(tc.seed), np.random.seed(tc.seed)
        train_data, valid_data = read_data_dir(train_dir), read_data_dir(valid_dir)
        self.speakers = sorted({u.speaker for u in train_data if u.speaker})
        self.model = self._build(config, state, train_data).to(ctx.device)
        self.intent_examples = [(u.text or "", u.intent) for u in train_data if u.intent in (self.intents or ())]
        config = self.config
        trainable = set_trainable(self.model, tc.trainable)
        self._make_loaders(train_data, valid_data)
        self.data_summary = {"train_dir": train_dir, "valid_dir": valid_dir, "train_utterances": len(train_data),
                             "train_hours": round(sum(self.train_set.durations) / 3600, 3)}
        if ctx.world_size > 1 and hasattr(self.model, "shared_space"):
            self.model.shared_space.group = dist.new_group(backend=dist.get_backend())
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                                                              find_unused_parameters=may_skip_parameters(config))
                    if ctx.world_size > 1 else self.model)
        # fused: one kernel over all parameters instead of a loop of small ops (7.5 -> 1.8 ms a step for the
        # tiny preset on 2 cores)
        self.optimizer = torch.optim.AdamW(trainable, lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay,
                                           fused=ctx.device.type in ("cpu", "cuda"))
        per_epoch = len(self.train_set) // tc.accum_grad
        self.total_steps = self.step_cap = tc.max_steps or max(1, tc.max_epochs * per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(tc.warmup_steps, self.total_steps, tc.final_lr_ratio))
        self.valid_seconds, self.bar, self.logged_plan = 0.0, None, self.total_steps
        self.precision = resolve_amp(tc.amp, ctx.device)
        self.autocast_dtype, use_scaler = amp_settings(self.precision)
        self.scaler = torch.amp.GradScaler(enabled=use_scaler)
        self.step, self.epoch, self.batch_index, self.history, self.scores = 0, 0, 0, [], {}
        if state:
            self._restore(state)
        elif ctx.main:
            save_config(config, os.path.join(out_dir, "config.yaml"))
            n_params = sum(p.numel() for p in self.model.parameters())
            log.info("model: %.2fM parameters (%.2fM trained); %d train / %d dev utterances; %d steps%s", n_params / 1e6,
                     sum(p.numel() for p in trainable) / 1e6, len(train_data), len(valid_data), self.total_steps,
                     f" at most, fewer if {tc.max_minutes:g} min (train.max_minutes) end sooner" if tc.max_minutes else "")
        if ctx.main:
            log.info("precision: %s (train.amp=%s on %s)", self.precision, tc.amp, ctx.device.type)

    def _build(self, config: Config, state: dict | None, train_data):
        """The model and its vocabularies: a resumed run's own, the ``train.init_from`` model's
        (extended with this run's heads), or new ones from the training data."""
        init_weights = None
        if state:
            from .text_tokenizer import TextTokenizer

            self.tokenizer = tokenizer_from_dict(state["tokenizer"], os.path.join(self.out_dir, "last.pt"))
            self.text_tokenizer = TextTokenizer.from_json(state["text_tokenizer"]) if state["text_tokenizer"] else None
            self.intents = json.loads(state["intents"])
        elif config.train.init_from:
            config, self.tokenizer, self.text_tokenizer, self.intents, init_weights = extend_model(config, self.speakers)
        else:
            self.tokenizer = make_tokenizer(config, (u.text for u in train_data))
            self.text_tokenizer, self.intents = make_text_vocabularies(config, train_data)
        self.config = config
        model = build_model(config, self.tokenizer, text_tokenizer=self.text_tokenizer, intents=self.intents)
        if state:  # before the loaders: a synthesis run aligns its data with the model's own CTC head
            model.load_state_dict(state["model"], strict=True)
        elif init_weights is not None:
            load_init_weights(model, init_weights, config.train.init_from)
        return model

    def _make_loaders(self, train_data, valid_data) -> None:
        config, ctx, seed = self.config, self.ctx, self.config.train.seed
        shard = {"rank": ctx.rank, "world_size": ctx.world_size, "normalise": config.model.normalize_waveform}
        if config.train.task == "synthesis":
            from .inference import SpeechTextPipeline
            from .synthesis_data import SynthesisBatchLoader, alignment_durations

            # Durations come from the recogniser's CTC head, which this run keeps frozen.
            recogniser = SpeechTextPipeline(self.model, self.tokenizer, config, device=ctx.device)
            args = (self.tokenizer, self.text_tokenizer, config.model.synthesis.mel, config.data, seed)
            for name, data in (("train", train_data), ("valid", valid_data)):
                frames = {} if self._cache_references(data) else None
                f0 = {} if config.model.synthesis.pitch else None  # 1.4 MB per hour of speech
                durations = alignment_durations(recogniser, data, config.model.synthesis.mel, frames, f0)
                loader = SynthesisBatchLoader(data, durations, *args, train=name == "train", speakers=self.speakers,
                                              ref_frames=frames, pitch=config.model.synthesis.pitch, f0=f0, **shard)
                setattr(self, f"{name}_set", loader)
            self.rank_key = "postnet"
            return
        shard.update(text_tokenizer=self.text_tokenizer, intents=self.intents)
        self.train_set = BatchLoader(train_data, self.tokenizer, config.data, seed, train=True, **shard)
        self.valid_set = BatchLoader(valid_data, self.tokenizer, config.data, seed, train=False, **shard)
        self.rank_key = "wer"

    def _cache_references(self, data) -> bool:
        """Whether the synthesis head's references can be encoded once: the audio encoder is frozen and
        its float32 frames of ``data`` fit ``data.reference_cache_mb``."""
        encoder = self.model.audio_encoder
        if any(p.requires_grad for p in encoder.parameters()):
            return False
        megabytes = sum(utterance_durations(data)) / frame_hop(encoder) * encoder.config.hidden_size * 4 / 2**20
        if megabytes > self.config.data.reference_cache_mb:
            if self.ctx.main:
                log.info("%s: the references' encoder frames (%.0f MB) exceed data.reference_cache_mb; "
                         "encoding them at every step", data.path, megabytes)
            return False
        return True

    def _restore(self, state: dict) -> None:
        """The killed run's optimiser, schedule, position and RNG streams (its weights are loaded by ``_build``)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch_index = state["step"], state["epoch"], state["batch_index"]
        self.history, self.scores = json.loads(state["history"]), json.loads(state["scores"])
        self.clock = TrainClock(**state.get("clock", {}), start=self.clock.start)  # a budget counts the killed run's time
        self._set_last_step(state.get("total_steps", self.total_steps))
        set_rng_state(state["rng"][self.ctx.rank] if self.ctx.rank < len(state["rng"]) else state["rng"][0])

    def _state(self) -> dict:
        rngs = [rng_state()]
        if self.ctx.world_size > 1:
            rngs = [None] * self.ctx.world_size
            dist.all_gather_object(rngs, rng_state())
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "step": self.step, "epoch": self.epoch, "batch_index": self.batch_index, "rng": rngs,
                "total_steps": self.total_steps, "clock": self.clock.state(),
                "history": json.dumps(self.history), "scores": json.dumps(self.scores),
                "tokenizer": self.tokenizer.to_dict(), "config": json.dumps(config_to_dict(self.config)),
                "text_tokenizer": self.text_tokenizer.to_json() if self.text_tokenizer else "",
                "intents": json.dumps(self.intents)}

    def save_last(self) -> None:
        state = self._state()  # every rank takes part in gathering RNG states
        if self.ctx.main:
            save_checkpoint(state, os.path.join(self.out_dir, "last.pt"))

    def fit(self) -> str | None:
        """Train to ``total_steps``; returns the final model directory (on rank 0)."""
        self.bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.ctx.main, desc="train", unit="step")
        workers = self.config.data.num_workers
        loader = torch.utils.data.DataLoader(self.train_set, batch_size=None, num_workers=workers,
                                             sampler=RunSampler(self.train_set, self.epoch, self.batch_index),
                                             prefetch_factor=4 if workers else None,
                                             worker_init_fn=_ignore_preemption_signals if workers else None,
                                             # its own generator: drawing a worker seed from the global RNG
                                             # would shift the dropout stream of a resumed run
                                             generator=torch.Generator().manual_seed(self.config.train.seed))
        train_mode(self.ddp)
        previous = self._catch_preemption()
        try:
            if self.step < self.total_steps:
                self._run(loader)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.bar.close()
        if not any(h.get("step") == self.step and "dev_loss" in h for h in self.history):
            self.validate_and_keep()
        return self.finish() if self.ctx.main else None

    def _run(self, loader) -> None:
        tc = self.config.train
        running, started = [], time.time()
        self.clock.enter_loop()
        for batch in loader:
            sync = (self.batch_index + 1) % tc.accum_grad == 0 or batch["last"]
            running.append(self._forward_backward(batch, sync))
            self.epoch, self.batch_index = batch["epoch"], batch["index"] + 1
            if batch["last"]:
                self.epoch, self.batch_index = self.epoch + 1, 0
            if not sync:
                continue
            grad_norm = self._optimizer_step()
            self.step += 1
            self.bar.update(1)
            if self.step % tc.log_interval == 0 or self.step == self.total_steps:
                self._log_train(running, grad_norm, time.time() - started)
                running, started = [], time.time()
                self._fit_budget()
            if (tc.valid_interval and self.step % tc.valid_interval == 0) or (not tc.valid_interval and batch["last"]):
                self.validate_and_keep()
            elif self.step % tc.save_interval == 0:
                self.save_last()
            if self._preemption_agreed() and self.step < self.total_steps:
                self.save_last()
                log.info("preempted (signal %s) at step %d: wrote %s; resume with --resume", self.preempted, self.step,
                         os.path.join(self.out_dir, "last.pt"))
                raise Preempted(f"stopped at step {self.step} on signal {self.preempted}; last.pt written")
            if self.step >= self.total_steps:
                return

    def _set_last_step(self, last: int) -> None:
        """End the run at step ``last``, the cosine decay re-fitted to end there."""
        tc = self.config.train
        self.total_steps = last
        self.scheduler.lr_lambdas = [lr_lambda(tc.warmup_steps, last, tc.final_lr_ratio)] * len(self.optimizer.param_groups)
        if self.bar is not None:
            self.bar.total = last
            self.bar.refresh()

    def _fit_budget(self) -> None:
        """With ``train.max_minutes``: move the last step so that the run ends within the budget
        (``speechtext.schedule``); every rank takes rank 0's plan, so that all stop at one step."""
        tc = self.config.train
        if not tc.max_minutes:
            return
        last = budget_steps(self.step, self.clock.loop_seconds(), self.clock.seconds(), tc.max_minutes * 60,
                            self.valid_seconds + FINISH_SECONDS, self.step_cap)
        last = rank0_value(last, self.ctx)
        if last == self.total_steps:
            return
        # logged when the plan has moved 1 % from the last one logged: it drifts a step at a time
        if self.ctx.main and (abs(last - self.logged_plan) > 0.01 * self.logged_plan or last == self.step):
            log.info("time budget %g min (train.max_minutes): %.1f spent, %.3f s a step; the run ends at step %d",
                     tc.max_minutes, self.clock.seconds() / 60, self.clock.loop_seconds() / self.step, last)
            self.logged_plan = last
        self._set_last_step(last)

    def _catch_preemption(self) -> dict:
        """Turn SIGTERM / SIGUSR1 into a request to stop at the next step boundary; returns the old handlers."""
        self.preempted = 0
        if threading.current_thread() is not threading.main_thread():
            return {}  # signals reach the main thread only; a run in a thread is stopped by other means

        def request(signum, _frame):
            self.preempted = signum

        return {sig: signal.signal(sig, request) for sig in PREEMPTION_SIGNALS}

    def _preemption_agreed(self) -> bool:
        """Whether any rank was signalled; every rank learns it at the same step (signals arrive apart)."""
        if self.ctx.world_size == 1:
            return bool(self.preempted)
        flag = torch.tensor([float(self.preempted)], device=self.ctx.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.preempted = int(flag.item())
        return bool(self.preempted)

    def _forward_backward(self, batch: dict, sync: bool) -> dict:
        device = self.ctx.device
        no_sync = self.ddp.no_sync if (self.ctx.world_size > 1 and not sync) else nullcontext
        on_device = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with no_sync():
            with _autocast(device, self.autocast_dtype):
                loss, stats = self.ddp(on_device)
            # batch["weight"]: this rank's share of the global batch (EpochBatches.share)
            self.scaler.scale(loss * (batch["weight"] / self.config.train.accum_grad)).backward()
        stats["audio_seconds"] = float(batch["lengths"].sum()) / 16000 if batch["weight"] else 0.0
        if not batch["weight"]:
            stats["utts"] = 0
        return stats

    def _optimizer_step(self) -> float:
        self.scaler.unscale_(self.optimizer)
        # grad_clip 0: no clipping (the norm is still measured and logged), as fairseq's clip_norm 0
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip or float("inf"))
        if torch.isfinite(norm) or self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # the scaler itself skips non-finite fp16 steps
        else:
            log.warning("step %d: non-finite gradient norm, update skipped", self.step)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return float(norm)

    def _log_train(self, running: list[dict], grad_norm: float, seconds: float) -> None:
        # utterance-weighted sums over this rank's batches, then over all ranks: the global batch's figures;
        # the same fixed list on every rank (a rank's batches may lack a head's targets)
        keys = ("loss", *LOGGED_LOSSES)
        sums = torch.tensor([sum(s["audio_seconds"] for s in running),
                             *(sum(s[k] * s["utts"] for s in running if k in s) for k in keys),
                             *(sum(s["utts"] for s in running if k in s) for k in keys)], dtype=torch.float64)
        if self.ctx.world_size > 1:
            sums = sums.to(self.ctx.device)
            dist.all_reduce(sums)
        audio, values, counts = sums[0].item(), sums[1:1 + len(keys)].tolist(), sums[1 + len(keys):].tolist()
        means = {k: v / n for k, v, n in zip(keys, values, counts) if n}
        utts = counts[0]
        entry = {"step": self.step, "epoch": self.epoch, "loss": float("nan"), **means,
                 "lr": self.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                 "audio_x_realtime": audio / max(seconds, 1e-9), "utts_per_second": utts / max(seconds, 1e-9)}
        self.history.append(entry)
        if self.ctx.main:
            log.info("step %(step)d epoch %(epoch)d loss %(loss).3f lr %(lr).2e grad %(grad_norm).2f "
                     "speed %(audio_x_realtime).0fx realtime", entry)
            with open(os.path.join(self.out_dir, "metrics.jsonl"), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

    def validate_and_keep(self) -> None:
        """Validate, keep the checkpoint if it is among the best ``keep_checkpoints``, save ``last.pt``."""
        started = time.time()
        if self.config.train.task == "synthesis":
            from .synthesis_data import validate_synthesis

            with _autocast(self.ctx.device, self.autocast_dtype):
                metrics = validate_synthesis(self.model, self.valid_set, self.ctx.device, self.ctx.world_size)
        else:
            metrics = validate(self.model, self.valid_set, self.tokenizer, self.ctx, self.autocast_dtype)
        entry = {"step": self.step, "epoch": self.epoch, **{f"dev_{k}": v for k, v in metrics.items()}}
        self.history.append(entry)
        if self.ctx.main:
            path = os.path.join(self.out_dir, f"ckpt-{self.step}.pt")
            save_checkpoint({"model": self.model.state_dict(), "step": self.step}, path)
            self.scores[path] = [metrics[self.rank_key], metrics["loss"]]
            for stale in sorted(self.scores, key=self.scores.get)[self.config.train.keep_checkpoints:]:
                os.remove(stale)
                del self.scores[stale]
            log.info("validation at step %d: %s", self.step, ", ".join(f"dev {k} {v:.3f}" for k, v in metrics.items()))
            with open(os.path.join(self.out_dir, "metrics.jsonl"), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
            plot_loss_curve(self.history, os.path.join(self.out_dir, "loss_curve.png"))
        train_mode(self.ddp)
        self.save_last()
        self.valid_seconds = time.time() - started  # what a time budget keeps for the final validation

    def finish(self) -> str:
        """Average the best checkpoints into ``<out_dir>/final`` and return its path."""
        best = sorted(self.scores, key=self.scores.get)[: self.config.train.average_best]
        self.model.load_state_dict(average_state_dicts(best), strict=True)
        final = os.path.join(self.out_dir, "final")
        summary = {"averaged": [os.path.basename(p) for p in best], "steps": self.step,
                   f"best_dev_{self.rank_key}": self.scores[best[0]][0], "precision": self.precision,
                   "minutes": round(self.clock.seconds() / 60, 2), "max_minutes": self.config.train.max_minutes,
                   "max_steps": self.step_cap,
                   **self.data_summary}
        save_model_dir(self.model, self.tokenizer, self.config, final, extra={"training": summary},
                       text_tokenizer=self.text_tokenizer, intents=self.intents,
                       transcript_intents=run_classifier(self.intent_examples, self.intents, self.config.train))
        log.info("averaged %s into %s", ", ".join(summary["averaged"]), final)
        return final


def train(config: Config, train_dir: str, valid_dir: str, out_dir: str, resume: bool = False) -> str | None:
    """Train a model; returns ``<out_dir>/final`` (``None`` on DDP ranks other than 0).

    ``resume=True`` continues from ``<out_dir>/last.pt``, written atomically every ``save_interval``
    steps and at each validation, with the exact batch order and RNG state of the killed run.
    """
    trainer = Trainer(config, train_dir, valid_dir, out_dir, resume=resume)
    distributed = trainer.ctx.world_size > 1 and dist.is_initialized()
    try:
        final = trainer.fit()
        if distributed:  # the other ranks wait for rank 0's final model: a rank that leaves early aborts gloo
            dist.barrier()
        return final
    finally:
        if distributed:
            dist.destroy_process_group()
