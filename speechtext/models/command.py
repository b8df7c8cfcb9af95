"""The voice-command head: candidate commands (free text) are fusion queries over the audio; each
fused phrase is scored, and the score is combined with the shared-space cosine. A closed-set
intent classifier reads the fused output of a learned query on the same fusion block, plus the
mean-pooled frames."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .shared_space import masked_mean


class CommandHead(nn.Module):
    def __init__(self, fusion_dim: int, text_dim: int, num_intents: int, audio_dim: int):
        super().__init__()
        self.match = nn.Sequential(nn.Linear(fusion_dim, fusion_dim), nn.GELU(), nn.Linear(fusion_dim, 1))
        self.intent_query = nn.Parameter(torch.randn(1, 1, text_dim) * 0.02)
        self.intent = nn.Linear(fusion_dim, num_intents) if num_intents else None
        # The fusion block also serves the attention decoder, whose loss dominates its gradients; the
        # mean-pooled frames give the intent classifier a direct path to the utterance as a whole.
        self.intent_audio = nn.Linear(audio_dim, num_intents) if num_intents else None

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
        return (self.intent(fused[:, 0]) + self.intent_audio(masked_mean(frames, frame_lengths))).float()


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
