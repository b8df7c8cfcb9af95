"""Cross-attention fusion: a stack of layers in which text-side queries (self-attention, then
cross-attention over audio frames, then a feed-forward block; pre-LayerNorm) produce fused vectors.

One module serves every head with different queries: command phrases (command head), decoder tokens
(recognition, with ``causal=True``), text for synthesis conditioning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import FusionConfig
from .audio_encoder import frame_mask


class FusionLayer(nn.Module):
    def __init__(self, cfg: FusionConfig):
        super().__init__()
        self.self_norm, self.cross_norm, self.ff_norm = (nn.LayerNorm(cfg.dim) for _ in range(3))
        self.self_attn = nn.MultiheadAttention(cfg.dim, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(cfg.dim, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(cfg.dim, cfg.ff_dim), nn.GELU(), nn.Dropout(cfg.dropout),
                                nn.Linear(cfg.ff_dim, cfg.dim))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, queries, query_pad, k, v, frame_keep, causal: bool, need_weights: bool):
        """``k``, ``v`` ``(B, heads, T, D / heads)``: this layer's projection of the frames (:meth:`FusionBlock.memory`);
        ``frame_keep (B, 1, 1, T)`` True on real frames."""
        x = self.self_norm(queries)
        causal_mask = (torch.triu(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device), 1)
                       if causal else None)
        h, _ = self.self_attn(x, x, x, key_padding_mask=query_pad, attn_mask=causal_mask, need_weights=False)
        queries = queries + self.dropout(h)
        q = _project(self.cross_attn, self.cross_norm(queries), 0)
        weights = None
        if need_weights:  # the maps for plots (inference): the same attention, written out
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            weights = scores.masked_fill(~frame_keep, float("-inf")).softmax(-1)
            h = self.cross_attn.out_proj((weights @ v).transpose(1, 2).flatten(2))
        else:
            h = _attend(self.cross_attn, q, k, v, frame_keep, self.cross_attn.dropout if self.training else 0.0)
        queries = queries + self.dropout(h)
        return queries + self.dropout(self.ff(self.ff_norm(queries))), weights


def _project(attn: nn.MultiheadAttention, x: torch.Tensor, which: int) -> torch.Tensor:
    """q (0), k (1) or v (2) projection of ``attn`` split into heads: ``(N, L, D) -> (N, heads, L, D / heads)``."""
    dim = attn.embed_dim
    out = F.linear(x, attn.in_proj_weight[which * dim:(which + 1) * dim], attn.in_proj_bias[which * dim:(which + 1) * dim])
    return out.view(x.shape[0], x.shape[1], attn.num_heads, dim // attn.num_heads).transpose(1, 2)


def _attend(attn: nn.MultiheadAttention, q, k, v, mask=None, dropout: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention of split heads and ``attn``'s output projection: ``(N, Lq, D)``."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    return attn.out_proj(out.transpose(1, 2).reshape(q.shape[0], q.shape[2], attn.embed_dim))


@dataclass
class FusionMemory:
    """The audio side of the fusion, computed once per utterance and shared by every query set over it
    (decoder tokens, command candidates, the intent query): each layer's cross-attention keys and
    values ``kv`` (``[(k, v)]``, each ``(B, heads, T, D / heads)``) and ``lengths (B,)``."""

    kv: list
    lengths: torch.Tensor

    def rows(self, index: torch.Tensor) -> "FusionMemory":
        """The memory of utterances ``index (N,)`` (e.g. one row per (utterance, command) pair)."""
        return FusionMemory([(k[index], v[index]) for k, v in self.kv], self.lengths[index])


class FusionBlock(nn.Module):
    """``queries (B, Q, Dq)`` over ``frames (B, T, Da)`` -> fused ``(B, Q, D)``."""

    def __init__(self, cfg: FusionConfig, query_dim: int, frame_dim: int):
        super().__init__()
        self.query_in = nn.Linear(query_dim, cfg.dim)
        self.frame_in = nn.Linear(frame_dim, cfg.dim)
        self.layers = nn.ModuleList(FusionLayer(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, queries, query_lengths, frames, frame_lengths, causal: bool = False,
                return_attention: bool = False, memory: FusionMemory | None = None):
        """Args: ``queries (B, Q, Dq)``, ``query_lengths (B,)``, ``frames (B, T, Da)``, ``frame_lengths (B,)``;
        or ``memory`` (:meth:`memory` of the frames, ``frames`` then unused), so that the frames projected
        once serve every set of queries over them.

        Returns ``(fused (B, Q, D), attention)``; ``attention`` is a list with one ``(B, heads, Q, T)``
        tensor of cross-attention weights per layer when ``return_attention``, else ``[]``.
        """
        memory = memory if memory is not None else self.memory(frames, frame_lengths)
        q_pad = ~frame_mask(query_lengths, queries.shape[1])
        keep = frame_mask(memory.lengths, memory.kv[0][0].shape[2])[:, None, None]
        x, maps = self.query_in(queries), []
        for layer, (k, v) in zip(self.layers, memory.kv):
            x, weights = layer(x, q_pad, k, v, keep, causal, return_attention)
            if return_attention:
                maps.append(weights)
        return self.norm(x), maps

    def memory(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> FusionMemory:
        """Encoder ``frames (B, T, Da)`` with ``frame_lengths (B,)`` -> their :class:`FusionMemory`."""
        return FusionMemory(self.cross_cache(self.frame_in(frames)), frame_lengths)

    def cross_cache(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of every layer's cross-attention over projected frames ``memory (B, T, D)``,
        computed once for incremental decoding: ``[(k, v)]``, each ``(B, heads, T, D / heads)``."""
        return [(_project(layer.cross_attn, memory, 1), _project(layer.cross_attn, memory, 2)) for layer in self.layers]

    def step(self, query: torch.Tensor, past: list, cross: list, frame_mask_: torch.Tensor, group: int = 1):
        """Incremental causal decoding, one new query per sequence (eval mode, no dropout).

        ``query (N, 1, Dq)``; ``past``: per layer ``(k, v)`` of the earlier positions' self-attention,
        or ``None`` at the first step; ``cross``: :meth:`cross_cache` rows, one per ``group``
        consecutive sequences (a beam's hypotheses share their utterance's frames, so they attend
        as ``group`` queries of one row instead of copying its keys); ``frame_mask_ (N / group, 1, 1, T)``
        True on real frames. Returns ``(fused (N, D), new past)``; equal to :meth:`forward` with
        ``causal=True`` at the last position."""
        x, new_past = self.query_in(query), []
        for layer, cache, (ck, cv) in zip(self.layers, past, cross):
            h = layer.self_norm(x)
            k, v = _project(layer.self_attn, h, 1), _project(layer.self_attn, h, 2)
            if cache is not None:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            new_past.append((k, v))
            x = x + _attend(layer.self_attn, _project(layer.self_attn, h, 0), k, v)
            q = _project(layer.cross_attn, layer.cross_norm(x), 0)  # (N, heads, 1, D / heads)
            q = q.reshape(-1, group, q.shape[1], q.shape[3]).transpose(1, 2)
            x = x + _attend(layer.cross_attn, q, ck, cv, frame_mask_).reshape(x.shape)
            x = x + layer.ff(layer.ff_norm(x))
        return self.norm(x)[:, 0], new_past
