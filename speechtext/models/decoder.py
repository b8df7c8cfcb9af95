"""The attention decoder of the recogniser: recognised tokens so far are the fusion block's queries
(causal self-attention, cross-attention over the audio frames), predicting the next token.

It reads the model's one ``fusion`` block (shared with the command head), so recognition, command
matching and synthesis conditioning all train the same cross-attention. Token ids are those of the
CTC tokenizer plus one ``<sos/eos>`` id (``vocab_size``), so CTC and attention scores line up token
for token in joint decoding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoids(length: int, dim: int, device=None) -> torch.Tensor:
    """Fixed sinusoidal positions ``(length, dim)``: no length limit, so long chunks decode too."""
    return sinusoid_rows(torch.arange(length, device=device), dim)


def sinusoid_rows(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Rows of the :func:`sinusoids` table at ``positions (P,)``: ``(P, dim)``. Takes the positions as a
    tensor so that an exported decoder step reads its position as an input."""
    position = positions.to(torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(positions.shape[0], dim, device=positions.device)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return table


class AttentionHead(nn.Module):
    """Token embeddings as fusion queries and an output layer over ``vocab_size + 1`` ids (the last
    is ``<sos/eos>``). ``label_smoothing`` spreads that much probability mass over the other tokens."""

    def __init__(self, vocab_size: int, query_dim: int, fusion_dim: int, label_smoothing: float = 0.1):
        super().__init__()
        self.sos_eos = vocab_size
        self.embed = nn.Embedding(vocab_size + 1, query_dim)
        self.out = nn.Linear(fusion_dim, vocab_size + 1)
        self.label_smoothing = label_smoothing
        self.scale = math.sqrt(query_dim)

    def logits(self, fusion, tokens, token_lengths, memory) -> torch.Tensor:
        """``tokens (N, L)`` starting with ``<sos>`` over ``memory`` (``fusion.memory`` of N utterances)
        -> next-token logits ``(N, L, V + 1)``."""
        queries = self.embed(tokens) * self.scale + sinusoids(tokens.shape[1], self.embed.embedding_dim, tokens.device)
        fused, _ = fusion(queries, token_lengths, None, None, causal=True, memory=memory)
        return self.out(fused).float()

    def embed_step(self, tokens: torch.Tensor, position) -> torch.Tensor:
        """Queries of the newest tokens ``(N,)`` at ``position`` (an int or a ``(1,)`` tensor): ``(N, 1, Dq)``."""
        if not torch.is_tensor(position):
            position = torch.tensor([position], device=tokens.device)
        return (self.embed(tokens) * self.scale + sinusoid_rows(position, self.embed.embedding_dim))[:, None]

    def loss(self, fusion, memory, targets, target_lengths) -> torch.Tensor:
        """Label-smoothed cross-entropy summed over tokens (and the final ``<eos>``) of the batch.
        ``memory``: ``fusion.memory`` of the frames; ``targets (B, L)`` padded token ids with ``target_lengths (B,)``."""
        batch, longest = targets.shape
        sos = torch.full((batch, 1), self.sos_eos, dtype=targets.dtype, device=targets.device)
        inputs = torch.cat([sos, targets], 1)  # padding past each length is masked out of the loss
        outputs = torch.cat([targets, sos], 1)
        outputs[torch.arange(batch), target_lengths] = self.sos_eos  # <eos> right after the last token
        positions = torch.arange(longest + 1, device=targets.device)[None]
        outputs = outputs.masked_fill(positions > target_lengths[:, None], -100)
        logits = self.logits(fusion, inputs, target_lengths + 1, memory)
        return F.cross_entropy(logits.transpose(1, 2), outputs, ignore_index=-100, reduction="sum",
                               label_smoothing=self.label_smoothing)
