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

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()  # CLIP's cap on 1 / temperature


def contrastive_loss(audio: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, keys: list[str]) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of paired unit vectors ``(B, D)``.

    ``keys`` are the pairs' transcripts: two items with the same transcript are not each other's
    negatives (their off-diagonal similarities are masked out), so duplicates never fight.
    """
    # In fp32 even under bf16 autocast: bf16 keeps ~3 significant digits of a cosine, and times CLIP's
    # scale (up to 100) that is logit noise of ~0.5 (the bf16 recipe's shared-space retrieval fell 4x).
    with torch.autocast(audio.device.type, enabled=False):
        logits = scale.float() * (audio.float() @ text.float().t())
    same = torch.tensor([[a == b for b in keys] for a in keys], device=logits.device)
    eye = torch.eye(len(keys), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(keys), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
