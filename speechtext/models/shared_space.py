"""The shared speech-text embedding space: pooled encoder outputs projected to ``D`` dimensions and
L2-normalised, trained with a symmetric InfoNCE loss and a learnable temperature (CLIP)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .audio_encoder import frame_mask


def masked_mean(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the real positions: ``(B, T, H)``, ``(B,)`` -> ``(B, H)``."""
    mask = frame_mask(lengths, states.shape[1]).unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1)


class Projection(nn.Module):
    """``(B, H) -> (B, D)`` unit vectors: a two-layer MLP, as CLIP-style heads use."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(pooled).float(), dim=-1)


class SharedSpace(nn.Module):
    """Projections of both modalities and the temperature of their similarity."""

    def __init__(self, audio_dim: int, text_dim: int, dim: int):
        super().__init__()
        self.audio = Projection(audio_dim, dim)
        self.text = Projection(text_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # Set by the trainer under DDP (a process group of its own): training batches then take the
        # whole global batch's utterances as contrastive negatives (:func:`gather_batch`).
        self.group = None

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()  # CLIP's cap on 1 / temperature


def contrastive_loss(audio: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, keys: list[str],
                     positions: torch.Tensor | None = None, all_audio: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between utterances and the texts of a batch, mean over the utterances.

    ``audio (B, D)`` are this process's utterances, at ``positions (B,)`` of the batch whose ``text
    (N, D)`` and ``all_audio (N, D)`` are given (under DDP: the global batch, see :class:`GatherRows`);
    by default ``positions`` is ``arange(B)`` and ``all_audio`` is ``audio``. ``keys`` are the ``N``
    transcripts: two items with the same transcript are not each other's negatives (their
    similarities are masked out), so duplicates never fight.
    """
    if positions is None:
        positions = torch.arange(len(audio), device=audio.device)
    if all_audio is None and len(text) != len(audio):
        raise ValueError(f"contrastive_loss: {len(audio)} utterances of a batch of {len(text)} texts need the other "
                         "utterances' embeddings (all_audio); under DDP set model.shared_space.group")
    all_audio = audio if all_audio is None else all_audio
    # In fp32 even under bf16 autocast: bf16 keeps ~3 significant digits of a cosine, and times CLIP's
    # scale (up to 100) that is logit noise of ~0.5 (the bf16 recipe's shared-space retrieval fell 4x).
    with torch.autocast(audio.device.type, enabled=False):
        audio_to_text = scale.float() * (audio.float() @ text.float().t())
        text_to_audio = scale.float() * (text[positions].float() @ all_audio.float().t())
    index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    codes = torch.tensor([index[key] for key in keys], device=audio.device)
    same = codes[positions][:, None] == codes[None, :]
    other = torch.ones_like(same).scatter_(1, positions[:, None], False)
    audio_to_text = audio_to_text.masked_fill(same & other, float("-inf"))
    text_to_audio = text_to_audio.masked_fill(same & other, float("-inf"))
    return (F.cross_entropy(audio_to_text, positions) + F.cross_entropy(text_to_audio, positions)) / 2


class GatherRows(torch.autograd.Function):
    """All-gather of ``(B_r, D)`` rows from every rank, differentiable: the backward pass sums each
    rank's gradient of its own loss with respect to the gathered rows and hands every rank those of
    its rows. So the contrastive loss under DDP has the whole global batch as negatives and the
    gradient of the one-process loss (CLIP's gathered negatives).

    Runs on its own process group: its backward all-reduce must not interleave with DDP's bucket
    all-reduces, whose order can differ between ranks whose graphs differ."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, group) -> torch.Tensor:
        world = torch.distributed.get_world_size(group)
        counts = [torch.zeros(1, dtype=torch.long, device=rows.device) for _ in range(world)]
        torch.distributed.all_gather(counts, torch.tensor([len(rows)], device=rows.device), group=group)
        ctx.counts, ctx.group = [int(c) for c in counts], group
        ctx.rank = torch.distributed.get_rank(group)
        width = max(ctx.counts)  # all_gather needs equal shapes (NCCL): pad to the longest share
        padded = rows.new_zeros((width, *rows.shape[1:]))
        padded[: len(rows)] = rows
        out = [torch.empty_like(padded) for _ in range(world)]
        torch.distributed.all_gather(out, padded.contiguous(), group=group)
        return torch.cat([o[:n] for o, n in zip(out, ctx.counts)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone(memory_format=torch.contiguous_format)  # the all-reduce works in place
        torch.distributed.all_reduce(grad, group=ctx.group)
        start = sum(ctx.counts[: ctx.rank])
        return grad[start: start + ctx.counts[ctx.rank]], None


def gather_batch(audio: torch.Tensor, positions: torch.Tensor, size: int, group, real: bool = True) -> torch.Tensor:
    """Every rank's rows ``audio (B_r, D)`` placed at their ``positions (B_r,)`` of the global batch:
    ``(size, D)``. A rank whose share is only a stand-in (``real`` False: weight 0) contributes none."""
    if not real:
        audio, positions = audio[:0], positions[:0]
    rows = GatherRows.apply(audio, group)
    where = GatherRows.apply(positions[:, None], group)[:, 0]
    return rows.new_zeros((size, rows.shape[1])).index_copy(0, where, rows)
