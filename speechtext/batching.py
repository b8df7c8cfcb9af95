"""Training batches: utterances bucketed by duration under a ``max_batch_seconds`` budget, augmented
(:mod:`speechtext.augment`) and padded with their lengths.

Batch order and every augmentation draw come from ``(seed, epoch, batch index)``, not from global
RNG state, so a resumed run sees exactly the batches the killed run would have seen.
"""
from __future__ import annotations

import logging
import random

import numpy as np
import torch

from .audio import load_audio, normalize, probe_duration
from .augment import augment
from .config import DataConfig
from .data import DataDir

log = logging.getLogger("speechtext.train")


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


def pad_waveforms(waves: list[np.ndarray], normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """List of ``(S_i,)`` arrays -> ``(waveforms (B, S), lengths (B,))``, zero-padded, each normalised."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()))
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = torch.from_numpy(normalize(wave) if normalise else wave)
    return batch, lengths


class EpochBatches(torch.utils.data.Dataset):
    """Dataset whose items are whole batches, keyed ``(epoch, index)``, so that one ``DataLoader``
    (its workers started once) serves the whole run. Item ``(e, i)`` is the same tensors whatever
    process builds it. A subclass sets ``durations`` (seconds per batchable item), ``cfg``, ``seed``,
    ``train``, ``rank`` and ``world_size``, and builds a batch in ``__getitem__``.

    Under DDP a batch is a *global* batch: its ``max_batch_seconds`` budget is the whole step's, and
    each of the ``world_size`` ranks takes every ``world_size``-th of its utterances (:meth:`share`).
    The batches, their order and the number of steps therefore do not depend on the number of
    processes: a run stopped on N processes resumes on M at the same global batch, and every rank has
    the same number of batches (no rank waits for another at the end of an epoch)."""

    _cache: tuple[int, list[list[int]]] | None = None

    def batches(self, epoch: int) -> list[list[int]]:
        """The global batches of ``epoch`` (every epoch the same for a validation set)."""
        epoch = epoch if self.train else 0
        if self._cache is None or self._cache[0] != epoch:
            batches = make_batches(self.durations, self.cfg.max_batch_seconds, self.seed, epoch, self.cfg.bucket_width)
            self._cache = (epoch, batches)
        return self._cache[1]

    def share(self, epoch: int, index: int) -> tuple[list[int], float]:
        """This rank's items of global batch ``(epoch, index)`` and their loss weight.

        The weight ``len(share) * world_size / len(batch)`` makes DDP's gradient average equal the
        gradient of the per-utterance mean over the global batch. A rank left without items (a batch
        of fewer utterances than ranks) repeats the first one with weight 0, so that it still takes
        part in the gradient all-reduce."""
        batch = self.batches(epoch)[index]
        part = batch[self.rank::self.world_size]
        if not part:
            return batch[:1], 0.0
        return part, len(part) * self.world_size / len(batch)

    def __len__(self) -> int:
        return len(self.batches(0))

    def __iter__(self):
        """Validation use: the batches of epoch 0, in order."""
        return (self[(0, i)] for i in range(len(self.batches(0))))


class BatchLoader(EpochBatches):
    """The recogniser's (and the cross-modal heads') batches: augmented audio, CTC targets, texts."""

    def __init__(self, data: DataDir, tokenizer, cfg: DataConfig, seed: int, train: bool, rank: int = 0,
                 world_size: int = 1, normalise: bool = True, text_tokenizer=None, intents: list[str] | None = None):
        self.utts, self.durations = list(data), utterance_durations(data)
        if train:  # too long to batch: left out, and said so (filter the data dir to keep them out for good)
            keep = [i for i, d in enumerate(self.durations) if d <= cfg.max_utterance_seconds]
            if len(keep) < len(self.utts):
                log.warning("%s: %d training utterance(s) longer than data.max_utterance_seconds=%g s left out",
                            data.path, len(self.utts) - len(keep), cfg.max_utterance_seconds)
                self.utts, self.durations = [self.utts[i] for i in keep], [self.durations[i] for i in keep]
        self.tokenizer, self.cfg, self.seed, self.train = tokenizer, cfg, seed, train
        self.rank, self.world_size, self.normalise = rank, world_size, normalise
        self.targets = [tokenizer.encode(u.text or "") for u in self.utts]
        self.text_tokenizer = text_tokenizer
        index = {name: i for i, name in enumerate(intents or [])}
        self.intent_ids = [index.get(u.intent, -1) for u in self.utts]

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        indices, weight = self.share(epoch, index)
        waves = []
        for i in indices:
            wave = load_audio(self.utts[i].audio)
            # one stream per utterance: its augmentation is the same however the batch is split
            waves.append(augment(wave, self.cfg, np.random.default_rng([self.seed, epoch, i])) if self.train else wave)
        waveforms, lengths = pad_waveforms(waves, self.normalise)
        targets = [torch.tensor(self.targets[i], dtype=torch.long) for i in indices]
        batch = {
            "epoch": epoch, "index": index, "last": index == len(self.batches(epoch)) - 1, "weight": weight,
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
        """The text side of a batch: the *global* batch's transcripts for the text encoder (every rank
        encodes all of them: they are the negatives of its utterances), ``positions`` of this rank's
        utterances among them, intent ids (-1: none) and command candidates of this rank's utterances.

        Candidates are drawn over the global batch and then cut to this rank's rows, so the contrastive
        and command losses see the same negatives on any number of processes."""
        from .models.command import sample_candidates

        members = self.batches(epoch)[index]
        texts = [self.utts[i].text or "" for i in members]
        where = {utt: pos for pos, utt in enumerate(members)}
        positions = [where[i] for i in indices]
        text_ids, text_lengths = self.text_tokenizer.encode(texts, allow_empty=True)
        generator = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, epoch, index, 1]).integers(2**31)))
        pairs, groups = local_candidates(*sample_candidates(texts, self.cfg.command_negatives, generator), positions)
        return {"texts": texts, "text_ids": text_ids, "text_lengths": text_lengths, "pairs": pairs, "groups": groups,
                "positions": torch.tensor(positions, dtype=torch.long),
                "intent_ids": torch.tensor([self.intent_ids[i] for i in indices], dtype=torch.long)}


def local_candidates(pairs: torch.Tensor, groups: torch.Tensor, positions: list[int]):
    """Cut global candidates (``pairs (P, 2)`` of (global audio, text), ``groups (B, 1 + K)`` rows of
    ``pairs``) to the utterances at ``positions``: audio indices become local, text indices stay global."""
    rows = groups[positions]
    kept = rows[rows >= 0]
    local = pairs[kept].clone()
    local[:, 0] = torch.repeat_interleave(torch.arange(len(positions)), (rows >= 0).sum(1))
    renumber = torch.full((len(pairs) + 1,), -1, dtype=torch.long)
    renumber[kept] = torch.arange(len(kept))
    return local, renumber[rows]  # -1 (padding) indexes the extra last slot, which stays -1


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
