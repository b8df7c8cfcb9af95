"""The voice-command head: candidate commands (free text) are fusion queries over the audio; each
fused phrase is scored, and the score is combined with the shared-space cosine. A closed-set
intent classifier reads the fused output of a learned query on the same fusion block, plus the
mean-pooled frames."""
from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from .shared_space import masked_mean


def intent_part_matrix(intents: list[str]) -> torch.Tensor:
    """``(num_intents, num_parts)`` 0/1: which of the ``_``-separated label parts that two or more
    intents share (``decrease`` of ``decrease_volume_kitchen``) each intent has."""
    split = [set(name.split("_")) - {""} for name in intents]
    counts = Counter(part for names in split for part in names)
    parts = sorted(part for part, n in counts.items() if n > 1)
    return torch.tensor([[float(part in names) for part in parts] for names in split]).reshape(len(intents), len(parts))


class CommandHead(nn.Module):
    def __init__(self, fusion_dim: int, text_dim: int, intents: list[str], audio_dim: int, intent_parts: bool = False):
        super().__init__()
        num_intents = len(intents)
        self.match = nn.Sequential(nn.Linear(fusion_dim, fusion_dim), nn.GELU(), nn.Linear(fusion_dim, 1))
        self.intent_query = nn.Parameter(torch.randn(1, 1, text_dim) * 0.02)
        self.intent = nn.Linear(fusion_dim, num_intents) if num_intents else None
        # The fusion block also serves the attention decoder, whose loss dominates its gradients; the
        # mean-pooled frames give the intent classifier a direct path to the utterance as a whole.
        self.intent_audio = nn.Linear(audio_dim, num_intents) if num_intents else None
        # Compositional labels (action_object_location): a combination seen a few times learns its
        # parts from every intent that shares them. Rebuilt from the names, so not saved.
        parts = intent_part_matrix(intents) if intent_parts and num_intents else torch.zeros(num_intents, 0)
        self.register_buffer("part_matrix", parts, persistent=False)
        if parts.shape[1]:
            self.intent_parts = nn.Linear(fusion_dim + audio_dim, parts.shape[1], bias=False)

    def pair_scores(self, fusion, text_states, text_lengths, frames, frame_lengths, pairs: torch.Tensor, memory=None):
        """Fusion match score for ``pairs (P, 2)`` of (audio index, text index): ``(P,)``.

        ``text_states (N, L, Ht)`` / ``text_lengths (N,)``, ``frames (B, T, Ha)`` / ``frame_lengths (B,)``;
        ``memory``: their ``fusion.memory`` when the caller has it already."""
        memory = memory if memory is not None else fusion.memory(frames, frame_lengths)
        # keys and values once per utterance, gathered per (utterance, command) pair
        fused, _ = fusion(text_states[pairs[:, 1]], text_lengths[pairs[:, 1]], None, None,
                          memory=memory.rows(pairs[:, 0]))
        return self.match(masked_mean(fused, text_lengths[pairs[:, 1]])).squeeze(-1).float()

    def intent_logits(self, fusion, frames, frame_lengths, memory=None) -> torch.Tensor:
        """``(B, num_intents)`` from the learned intent query fused over each utterance's frames
        ``(B, T, H)`` (``memory``: their ``fusion.memory`` when the caller has it already)."""
        query = self.intent_query.expand(frames.shape[0], 1, -1)
        ones = torch.ones(frames.shape[0], dtype=torch.long, device=frames.device)
        fused, _ = fusion(query, ones, frames, frame_lengths, memory=memory)
        pooled = masked_mean(frames, frame_lengths)
        logits = self.intent(fused[:, 0]) + self.intent_audio(pooled)
        if self.part_matrix.shape[1]:
            logits = logits + self.intent_parts(torch.cat([fused[:, 0], pooled], -1)) @ self.part_matrix.T.to(logits.dtype)
        return logits.float()


def sample_candidates(keys: list[str], negatives: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """For each item, its own text first and up to ``negatives`` texts of other items whose transcript
    differs (so no duplicate counts as a wrong answer). Returns ``(pairs (P, 2), group (B, 1 + K))``:
    ``group[i]`` indexes the rows of ``pairs`` that belong to item ``i`` (padded with -1)."""
    rows, groups = [], []
    for i, key in enumerate(keys):
        others = [j for j, other in enumerate(keys) if other != key]
        order = torch.randperm(len(others), generator=generator)[:negatives].tolist()
        chosen = [i] + [others[k] for k in order]
        groups.append(list(range(len(rows), len(rows) + len(chosen))) + [-1] * (negatives + 1 - len(chosen)))
        rows += [(i, j) for j in chosen]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(groups, dtype=torch.long)


def grouped_cross_entropy(scores: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per item over its candidate scores, the correct one at position 0."""
    logits = scores[group.clamp(min=0)].masked_fill(group < 0, float("-inf"))
    return F.cross_entropy(logits, torch.zeros(len(group), dtype=torch.long, device=scores.device))
