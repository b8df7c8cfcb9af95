"""Training batches: utterances bucketed by duration under a ``max_batch_seconds`` budget, augmented
(speed perturbation, gain, additive noise) and padded with their lengths.

Batch order and every augmentation draw come from ``(seed, epoch, batch index)``, not from global
RNG state, so a resumed run sees exactly the batches the killed run would have seen.
"""
from __future__ import annotations

import random

import numpy as np
import torch

from .audio import SAMPLE_RATE, load_audio, normalize, probe_duration
from .config import DataConfig
from .data import DataDir


def utterance_durations(data: DataDir) -> list[float]:
    """Durations in seconds, from ``utt2dur``/segments when present, else from the file headers."""
    return [utt.duration if utt.duration is not None else probe_duration(utt.audio) for utt in data]


def make_batches(durations: list[float], max_batch_seconds: float, seed: int, epoch: int,
                 bucket_width: float = 0.5) -> list[list[int]]:
    """Group utterance indices into batches whose padded duration (count x longest) fits the budget.

    Utterances are sorted by duration with a little jitter (so batch contents vary between epochs),
    packed greedily, and the batch order is shuffled. Deterministic in ``(seed, epoch)``.
    """
    rng = random.Random(f"{seed}-{epoch}")
    keyed = sorted(range(len(durations)), key=lambda i: durations[i] + rng.uniform(0, bucket_width))
    batches, current, longest = [], [], 0.0
    for index in keyed:
        longer = max(longest, durations[index])
        if current and longer * (len(current) + 1) > max_batch_seconds:
            batches.append(current)
            current, longer = [], durations[index]
        current.append(index)
        longest = longer
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def _peaking(freq: float, gain_db: float, q: float):
    """Biquad peaking-EQ coefficients (RBJ cookbook) at ``freq`` Hz."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / SAMPLE_RATE
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return b / den[0], den / den[0]


def _colour(samples: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """Filters that change the spectral envelope a synthesiser or microphone imprints, not the words."""
    from scipy.signal import butter, fftconvolve, lfilter

    if rng.random() < cfg.eq_prob:
        for _ in range(rng.integers(1, 4)):
            b, a = _peaking(rng.uniform(150, 6000), rng.uniform(-12, 12), rng.uniform(0.5, 2.0))
            samples = lfilter(b, a, samples)
        tilt = rng.uniform(-0.9, 0.6)  # first-order tilt: >0 brightens, <0 darkens
        samples = lfilter([1, -tilt], [1], samples) if tilt > 0 else lfilter([1 + tilt], [1, tilt], samples)
    if rng.random() < cfg.lowpass_prob:
        b, a = butter(6, rng.uniform(3400, 7500) / (SAMPLE_RATE / 2))
        samples = lfilter(b, a, samples)
    if rng.random() < cfg.reverb_prob:
        rt60 = rng.uniform(0.1, 0.5)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        rir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path against the tail: near or far talker
        samples = fftconvolve(samples, rir / np.abs(rir).sum() * 4)[: len(samples)]
    return samples


def augment(samples: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """Speed perturbation (resampling, so pitch and formants move too), spectral colouring, gain and noise."""
    if cfg.speed_perturb:
        factor = float(rng.uniform(cfg.speed_perturb[0], cfg.speed_perturb[-1]))
        if abs(factor - 1.0) > 1e-3:
            import soxr  # librosa's resampling backend, called directly: its wrapper costs 100x more here

            samples = soxr.resample(samples, SAMPLE_RATE * factor, SAMPLE_RATE, "QQ")
    samples = _colour(samples, cfg, rng)
    if cfg.silence_pad:
        # Recordings rarely start on the first word; the added silence gets the noise below like the speech.
        lead, trail = (int(rng.uniform(0, cfg.silence_pad) * SAMPLE_RATE) for _ in range(2))
        samples = np.concatenate([np.zeros(lead, samples.dtype), samples, np.zeros(trail, samples.dtype)])
    if cfg.gain_db:
        samples = samples * 10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20)
    if cfg.noise_prob and rng.random() < cfg.noise_prob:
        snr = rng.uniform(*cfg.noise_snr_db)
        power = float(np.mean(samples**2)) + 1e-10
        noise = rng.standard_normal(len(samples)).astype(np.float32)
        # Pink-ish noise: white noise smoothed, closer to room noise than pure hiss.
        noise = np.convolve(noise, np.ones(4, dtype=np.float32) / 4, mode="same")
        noise *= np.sqrt(power / (np.mean(noise**2) + 1e-10) / 10 ** (snr / 10))
        samples = samples + noise
    return samples.astype(np.float32)


def pad_waveforms(waves: list[np.ndarray], normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """List of ``(S_i,)`` arrays -> ``(waveforms (B, S), lengths (B,))``, zero-padded, each normalised."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()))
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = torch.from_numpy(normalize(wave) if normalise else wave)
    return batch, lengths


class BatchLoader(torch.utils.data.Dataset):
    """Dataset whose items are whole batches, keyed ``(epoch, index)``, so that one ``DataLoader``
    (its workers started once) serves the whole run. Item ``(e, i)`` is the same tensors whatever
    process builds it. Under DDP each rank sees its own share of every epoch's batches."""

    def __init__(self, data: DataDir, tokenizer, cfg: DataConfig, seed: int, train: bool, rank: int = 0,
                 world_size: int = 1, normalise: bool = True, text_tokenizer=None, intents: list[str] | None = None):
        self.utts = list(data)
        self.durations = utterance_durations(data)
        self.tokenizer, self.cfg, self.seed, self.train = tokenizer, cfg, seed, train
        self.rank, self.world_size, self.normalise = rank, world_size, normalise
        self.targets = [tokenizer.encode(u.text or "") for u in self.utts]
        self.text_tokenizer = text_tokenizer
        index = {name: i for i, name in enumerate(intents or [])}
        self.intent_ids = [index.get(u.intent, -1) for u in self.utts]
        self._cache: tuple[int, list[list[int]]] | None = None

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch`` (every epoch the same for a validation set)."""
        epoch = epoch if self.train else 0
        if self._cache is None or self._cache[0] != epoch:
            batches = make_batches(self.durations, self.cfg.max_batch_seconds, self.seed, epoch, self.cfg.bucket_width)
            # Every rank gets the same number of batches, or DDP would wait forever on the longest rank.
            usable = len(batches) - len(batches) % self.world_size if len(batches) >= self.world_size else len(batches)
            self._cache = (epoch, batches[:usable][self.rank::self.world_size])
        return self._cache[1]

    def __len__(self) -> int:
        return len(self.batches(0))

    def __iter__(self):
        """Validation use: the batches of epoch 0, in order."""
        return (self[(0, i)] for i in range(len(self.batches(0))))

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        indices = self.batches(epoch)[index]
        waves = []
        for i in indices:
            wave = load_audio(self.utts[i].audio)
            waves.append(augment(wave, self.cfg, rng) if self.train else wave)
        waveforms, lengths = pad_waveforms(waves, self.normalise)
        targets = [torch.tensor(self.targets[i], dtype=torch.long) for i in indices]
        batch = {
            "epoch": epoch, "index": index, "last": index == len(self.batches(epoch)) - 1,
            "utt_ids": [self.utts[i].utt_id for i in indices],
            "waveforms": waveforms,
            "lengths": lengths,
            "targets": torch.nn.utils.rnn.pad_sequence(targets, batch_first=True),
            "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long),
        }
        if self.text_tokenizer is not None:
            batch.update(self._text_fields(indices, epoch, index))
        return batch

    def _text_fields(self, indices: list[int], epoch: int, index: int) -> dict:
        """Transcripts for the text encoder, intent ids (-1: none) and command candidates per utterance."""
        from .models.command import sample_candidates

        texts = [self.utts[i].text or "" for i in indices]
        text_ids, text_lengths = self.text_tokenizer.encode(texts)
        generator = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, epoch, index, 1]).integers(2**31)))
        pairs, groups = sample_candidates(texts, self.cfg.command_negatives, generator)
        return {"texts": texts, "text_ids": text_ids, "text_lengths": text_lengths, "pairs": pairs, "groups": groups,
                "intent_ids": torch.tensor([self.intent_ids[i] for i in indices], dtype=torch.long)}


class RunSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` keys from a start position onwards, epoch after epoch, without end."""

    def __init__(self, dataset: BatchLoader, epoch: int, index: int):
        self.dataset, self.epoch, self.index = dataset, epoch, index

    def __iter__(self):
        epoch, index = self.epoch, self.index
        while True:
            count = len(self.dataset.batches(epoch))
            for i in range(index, count):
                yield epoch, i
            epoch, index = epoch + 1, 0
