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


def augment(samples: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """Speed perturbation (resampling, so pitch moves too, as in Kaldi's recipes), gain and noise."""
    if cfg.speed_perturb:
        factor = float(rng.choice(cfg.speed_perturb))
        if factor != 1.0:
            import librosa

            samples = librosa.resample(samples, orig_sr=int(SAMPLE_RATE * factor), target_sr=SAMPLE_RATE,
                                       res_type="soxr_qq")
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


def pad_waveforms(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of ``(S_i,)`` arrays -> ``(waveforms (B, S), lengths (B,))``, zero-padded, each normalised."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()))
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = torch.from_numpy(normalize(wave))
    return batch, lengths


class BatchLoader(torch.utils.data.Dataset):
    """Dataset whose items are whole batches, so ``DataLoader`` workers build them in parallel.

    Item ``i`` of epoch ``e`` is the same tensors whatever process builds it.
    """

    def __init__(self, data: DataDir, tokenizer, cfg: DataConfig, seed: int, train: bool):
        self.utts = list(data)
        self.durations = utterance_durations(data)
        self.tokenizer, self.cfg, self.seed, self.train = tokenizer, cfg, seed, train
        self.targets = [tokenizer.encode(u.text or "") for u in self.utts]
        self.set_epoch(0)

    def set_epoch(self, epoch: int, rank: int = 0, world_size: int = 1) -> None:
        self.epoch = epoch
        batches = make_batches(self.durations, self.cfg.max_batch_seconds, self.seed, epoch if self.train else 0,
                               self.cfg.bucket_width)
        # Every rank gets the same number of batches, or DDP would wait forever on the longest rank.
        usable = len(batches) - len(batches) % world_size if len(batches) >= world_size else len(batches)
        self.batches = batches[:usable][rank::world_size]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        indices = self.batches[index]
        waves = []
        for i in indices:
            wave = load_audio(self.utts[i].audio)
            waves.append(augment(wave, self.cfg, rng) if self.train else wave)
        waveforms, lengths = pad_waveforms(waves)
        targets = [torch.tensor(self.targets[i], dtype=torch.long) for i in indices]
        return {
            "utt_ids": [self.utts[i].utt_id for i in indices],
            "waveforms": waveforms,
            "lengths": lengths,
            "targets": torch.nn.utils.rnn.pad_sequence(targets, batch_first=True) if targets else torch.zeros(0),
            "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long),
        }
