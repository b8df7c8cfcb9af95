"""``SpeechTextModel``: one audio backbone (``audio_encoder``) shared by a dict of heads.

Every head reads the backbone's frames, so a backbone-only checkpoint loads into any head set.
With ``model.text_encoder`` set, the model also holds ``text_encoder``, ``shared_space`` (both
modalities projected into one embedding space) and ``fusion`` (text-side queries over audio
frames), which the command head uses. Transcribing runs the audio encoder and CTC head only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, ModelConfig
from .audio_encoder import build_audio_encoder, encode_audio
from .command import CommandHead, grouped_cross_entropy
from .decoder import AttentionHead
from .fusion import FusionBlock
from .synthesis import SynthesisHead
from .shared_space import SharedSpace, contrastive_loss, gather_batch, masked_mean
from .text_encoder import build_text_encoder, encode_text


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


def ctc_log_likelihood(log_probs, frame_lengths, targets, target_lengths, pairs, blank: int, chunk: int = 1024):
    """CTC log-likelihood ``log P(text | audio)`` of each (audio, text) pair ``(P, 2)``: ``(P,)``.

    ``log_probs (B, T, V)`` from the CTC head with ``frame_lengths (B,)``; ``targets (N, L)`` padded
    token ids of the texts with ``target_lengths (N,)``. A text that cannot fit the frames scores -1e4."""
    out = []
    for rows in pairs.split(chunk):  # bounded memory: each pair gathers its utterance's (T, V)
        a, t = rows[:, 0], rows[:, 1]
        nll = F.ctc_loss(log_probs[a].transpose(0, 1), targets[t], frame_lengths[a], target_lengths[t],
                         blank=blank, reduction="none", zero_infinity=False)
        out.append(-nll.clamp(max=1e4))
    return torch.cat(out) if out else log_probs.new_zeros(0)


class SpeechTextModel(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int, blank_id: int = 0, text_vocab_size: int = 0,
                 intents: list[str] | None = None):
        super().__init__()
        unknown = set(config.heads) - {"ctc", "attention", "command", "synthesis"}
        if unknown:
            raise ConfigError(f"model.heads: unknown head(s) {sorted(unknown)}; available: ctc, attention, command, "
                              "synthesis")
        for head in ("command", "synthesis"):
            if head in config.heads and config.text_encoder is None:
                raise ConfigError(f"model.heads: the {head} head needs model.text_encoder")
        self.config = config
        self.audio_encoder = build_audio_encoder(config.encoder)
        hidden = self.audio_encoder.config.hidden_size
        self.heads = nn.ModuleDict()
        if "ctc" in config.heads:
            self.heads["ctc"] = CTCHead(hidden, vocab_size, config.ctc_dropout, blank_id)
        query_dim = config.fusion.dim
        if config.text_encoder is not None:
            self.text_encoder = build_text_encoder(config.text_encoder, text_vocab_size)
            query_dim = self.text_encoder.config.hidden_size
            self.shared_space = SharedSpace(hidden, query_dim, config.embed_dim)
        if config.text_encoder is not None or "attention" in config.heads:
            self.fusion = FusionBlock(config.fusion, query_dim, hidden)
        if "attention" in config.heads:
            self.heads["attention"] = AttentionHead(vocab_size, query_dim, config.fusion.dim, config.label_smoothing)
        if "command" in config.heads:
            self.heads["command"] = CommandHead(config.fusion.dim, query_dim, intents or [], hidden, config.intent_parts)
        if "synthesis" in config.heads:
            self.heads["synthesis"] = SynthesisHead(config.synthesis, vocab_size, config.fusion.dim, hidden)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """``(B, S)`` waveforms with ``(B,)`` lengths -> ``(frames (B, T, H), frame_lengths (B,))``."""
        return encode_audio(self.audio_encoder, waveforms, lengths)

    def ctc_log_probs(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """``(log_probs (B, T, V), frame_lengths (B,))`` from the CTC head."""
        frames, frame_lengths = self.encode(waveforms, lengths)
        return self.heads["ctc"](frames), frame_lengths

    def embed_frames(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Audio frames ``(B, T, H)`` -> unit vectors of the shared space ``(B, D)``."""
        return self.shared_space.audio(masked_mean(frames, frame_lengths))

    def encode_texts(self, ids: torch.Tensor, lengths: torch.Tensor):
        """Token ids ``(N, L)`` -> ``(token states (N, L, Ht), unit vectors of the shared space (N, D))``."""
        states = encode_text(self.text_encoder, ids, lengths)
        return states, self.shared_space.text(masked_mean(states, lengths))

    def synthesis_conditioning(self, ref_frames, ref_lengths, text_ids, text_lengths, ref_waveforms, ref_samples,
                               ref_pitch=None):
        """The text encoder's states over a reference's frames ``(B, T, H)`` (``ref_lengths (B,)``) through
        the shared fusion block, and the voice of the reference (``ref_waveforms (B, S)`` with ``ref_samples
        (B,)``, the encoder's input; ``ref_pitch (B, 3)`` its pitch statistics, computed when ``None``):
        ``(fused (B, W, D), speaker vector (B, S), pitch statistics (B, 3) or None)``."""
        states = encode_text(self.text_encoder, text_ids, text_lengths)
        fused, _ = self.fusion(states, text_lengths, ref_frames, ref_lengths)
        return (fused, *self.heads["synthesis"].reference_voice(ref_frames, ref_lengths, ref_waveforms, ref_samples,
                                                                ref_pitch))

    def command_scores(self, frames, frame_lengths, audio_emb, states, text_lengths, text_emb, pairs, memory=None):
        """Score of each (audio, command) pair ``(P, 2)``: fusion match plus scaled shared-space cosine, ``(P,)``."""
        match = self.heads["command"].pair_scores(self.fusion, states, text_lengths, frames, frame_lengths, pairs, memory)
        return match + self.shared_space.scale() * (audio_emb[pairs[:, 0]] * text_emb[pairs[:, 1]]).sum(-1)

    def text_log_likelihood(self, log_probs, frame_lengths, targets, target_lengths, pairs, chunk: int = 1024):
        """CTC log-likelihood ``log P(text | audio)`` of each (audio, text) pair; see :func:`ctc_log_likelihood`."""
        return ctc_log_likelihood(log_probs, frame_lengths, targets, target_lengths, pairs,
                                  self.heads["ctc"].blank_id, chunk)

    def forward(self, batch: dict):
        """Training step on a batch from ``BatchLoader``. Returns ``(loss, stats)``: the weighted sum of
        the per-utterance losses of every head the batch has targets for; stats are floats. A synthesis
        batch (one with ``mel`` targets) trains the synthesis head alone."""
        if "mel" in batch:
            return self._synthesis_step(batch)
        frames, frame_lengths = self.encode(batch["waveforms"], batch["lengths"])
        losses = {}
        # the frames' keys and values in every fusion layer, shared by the decoder, command and intent queries
        memory = self.fusion.memory(frames, frame_lengths) if {"attention", "command"} & set(self.heads) else None
        if "ctc" in self.heads:
            log_probs = self.heads["ctc"](frames)
            ctc = self.heads["ctc"].loss(log_probs, frame_lengths, batch["targets"], batch["target_lengths"])
            losses["ctc"] = ctc / frames.shape[0]
        if "attention" in self.heads:
            att = self.heads["attention"].loss(self.fusion, memory, batch["targets"], batch["target_lengths"])
            losses["attention"] = att / frames.shape[0]
        if self.config.text_encoder is not None and "text_ids" in batch:
            losses.update(self._crossmodal_losses(batch, frames, frame_lengths, memory))
        weights = dict(self.config.loss_weights)
        if "attention" in losses and "ctc" in losses:  # hybrid CTC/attention: ctc_weight shares one unit between them
            weights["ctc"], weights["attention"] = self.config.ctc_weight, 1.0 - self.config.ctc_weight
        loss = sum(weights.get(name, 1.0) * value for name, value in losses.items())
        stats = {"loss": loss.item(), **{k: v.item() for k, v in losses.items()}, "utts": frames.shape[0],
                 "frames": int(frame_lengths.sum())}
        return loss, stats

    def _synthesis_step(self, batch: dict):
        if "ref_frames" in batch:  # the frozen encoder's frames, computed once (SynthesisBatchLoader)
            ref_frames, ref_lengths = batch["ref_frames"], batch["ref_frame_lengths"]
        else:
            ref_frames, ref_lengths = self.encode(batch["ref_waveforms"], batch["ref_lengths"])
        fused, speaker, ref_pitch = self.synthesis_conditioning(
            ref_frames, ref_lengths, batch["text_ids"], batch["text_lengths"], batch["ref_waveforms"], batch["ref_lengths"],
            batch.get("ref_pitch"))
        losses = self.heads["synthesis"].loss(batch, fused, speaker, ref_pitch)
        cfg = self.config.synthesis
        weights = {"duration": cfg.duration_weight, "speaker": cfg.speaker_weight, "pitch": cfg.pitch_weight,
                   "voicing": cfg.pitch_weight}
        loss = sum(weights.get(name, 1.0) * value for name, value in losses.items())
        stats = {"loss": loss.item(), **{k: v.item() for k, v in losses.items()}, "utts": ref_frames.shape[0],
                 "frames": int(batch["mel_lengths"].sum())}
        return loss, stats

    def _crossmodal_losses(self, batch: dict, frames, frame_lengths, memory) -> dict:
        audio_emb = self.embed_frames(frames, frame_lengths)
        states, text_emb = self.encode_texts(batch["text_ids"], batch["text_lengths"])
        # Texts are the global batch's (BatchLoader); under DDP the audio of every rank is gathered too
        positions, all_audio = batch.get("positions"), None
        if self.shared_space.group is not None and self.training:
            all_audio = gather_batch(audio_emb, positions, len(batch["texts"]), self.shared_space.group,
                                     real=bool(batch.get("weight", 1.0)))
        losses = {"contrastive": contrastive_loss(audio_emb, text_emb, self.shared_space.scale(), batch["texts"],
                                                  positions, all_audio)}
        if "command" in self.heads and batch["pairs"].numel():
            scores = self.command_scores(frames, frame_lengths, audio_emb, states, batch["text_lengths"], text_emb,
                                         batch["pairs"], memory)
            losses["command"] = grouped_cross_entropy(scores, batch["groups"])
        head = self.heads["command"] if "command" in self.heads else None
        if head is not None and head.intent is not None and (batch["intent_ids"] >= 0).any():
            logits = head.intent_logits(self.fusion, frames, frame_lengths, memory)
            losses["intent"] = F.cross_entropy(logits, batch["intent_ids"], ignore_index=-1)
        return losses
