"""``SpeechTextModel``: one audio backbone (``audio_encoder``) shared by a dict of heads.

Every head reads the backbone's frames, so a backbone-only checkpoint loads into any head set.
The text encoder, the shared embedding projections and the cross-attention fusion block join this
class as further attributes (``text_encoder``, ``projection``, ``fusion``) with the command and
synthesis heads; recognition today is the CTC head.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, ModelConfig
from .audio_encoder import build_audio_encoder, encode_audio


class CTCHead(nn.Module):
    """Frame-wise token classifier trained with CTC: ``(B, T, H) -> (B, T, V)`` log-probabilities."""

    def __init__(self, hidden_size: int, vocab_size: int, dropout: float, blank_id: int):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size, vocab_size)
        self.blank_id = blank_id

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.proj(self.dropout(frames)).float(), dim=-1)

    def loss(self, log_probs, frame_lengths, targets, target_lengths) -> torch.Tensor:
        """Summed CTC loss over the batch. ``log_probs (B, T, V)``, ``targets (B, L)`` padded."""
        return F.ctc_loss(log_probs.transpose(0, 1), targets, frame_lengths, target_lengths,
                          blank=self.blank_id, reduction="sum", zero_infinity=True)


class SpeechTextModel(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int, blank_id: int = 0):
        super().__init__()
        unknown = set(config.heads) - {"ctc"}
        if unknown:
            raise ConfigError(f"model.heads: unknown head(s) {sorted(unknown)}; available: ctc")
        self.config = config
        self.audio_encoder = build_audio_encoder(config.encoder)
        hidden = self.audio_encoder.config.hidden_size
        self.heads = nn.ModuleDict()
        if "ctc" in config.heads:
            self.heads["ctc"] = CTCHead(hidden, vocab_size, config.ctc_dropout, blank_id)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """``(B, S)`` waveforms with ``(B,)`` lengths -> ``(frames (B, T, H), frame_lengths (B,))``."""
        return encode_audio(self.audio_encoder, waveforms, lengths)

    def ctc_log_probs(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """``(log_probs (B, T, V), frame_lengths (B,))`` from the CTC head."""
        frames, frame_lengths = self.encode(waveforms, lengths)
        return self.heads["ctc"](frames), frame_lengths

    def forward(self, waveforms, lengths, targets, target_lengths):
        """Training step. Returns ``(loss, stats)``: the loss is averaged per utterance; stats are floats."""
        log_probs, frame_lengths = self.ctc_log_probs(waveforms, lengths)
        ctc = self.heads["ctc"].loss(log_probs, frame_lengths, targets, target_lengths)
        batch = waveforms.shape[0]
        loss = ctc / batch
        stats = {"loss": loss.item(), "ctc": loss.item(), "utts": batch,
                 "frames": int(frame_lengths.sum()), "tokens": int(target_lengths.sum())}
        return loss, stats
