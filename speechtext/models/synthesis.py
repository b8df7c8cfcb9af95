"""The synthesis conditioning head: text spoken in the voice of a reference recording.

Non-autoregressive, FastSpeech-style, on the shared backbone. The text encoder's states are the
queries of the shared fusion block over the reference's encoder frames; the fused vectors are
spread over the recogniser's tokens (characters, with a silence unit at each end), which a conv
encoder turns into states that a duration predictor reads. The length regulator repeats each
state for its duration (from the recogniser's CTC alignment in training, predicted and scaled by
``speed`` at inference), and a conv mel decoder with a postnet writes log-mel frames. A speaker
vector pooled over the reference's frames conditions the encoder and every decoder layer (FiLM,
with ``speaker_film``); a classifier over the
training voices trains it to tell voices apart (the shared space, by contrast, encodes content).

With ``pitch`` (FastPitch), a predictor gives every token its F0 (as a departure from the reference's
mean log F0, so the pitch level is the reference's) and voicing; their embedding is added to the
token states before the length regulator, and the harmonic pattern of the F0 is added to the
decoder's mel (source-filter: the decoder writes the envelope). Trained on the target's own pitch
(YIN), the synthesis has harmonics at the pitch it is told instead of a smooth average of all pitches.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SynthesisConfig
from ..mel import PITCH_REF_HZ, LogMel, frame_pitch, harmonic_comb, pitch_statistics
from .audio_encoder import frame_mask


class ConvBlock(nn.Module):
    """Residual 1-D conv + ReLU + LayerNorm over ``(B, T, C)``; padded positions stay zero."""

    def __init__(self, dim: int, kernel: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.norm, self.dropout = nn.LayerNorm(dim), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(x.transpose(1, 2)).transpose(1, 2))
        return self.norm(x + self.dropout(h)) * mask[..., None]


class SpeakerEncoder(nn.Module):
    """Unit speaker vector ``(B, S)`` from a reference: the mean and standard deviation over time of its
    projected encoder frames and of its log-mel frames (and its pitch statistics, when given). The
    encoder's frames, trained for recognition, keep little of the voice; the mel statistics keep its
    spectral envelope, the pitch statistics its pitch level and range."""

    def __init__(self, frame_dim: int, dim: int, speaker_dim: int, n_mels: int, pitch_stats: int = 0):
        super().__init__()
        self.proj = nn.Linear(frame_dim, dim)
        self.mel_norm = nn.LayerNorm(2 * n_mels)
        self.out = nn.Sequential(nn.Linear(2 * dim + 2 * n_mels + pitch_stats, dim), nn.ReLU(), nn.Linear(dim, speaker_dim))

    def forward(self, frames, lengths, mel, mel_lengths, pitch_stats=None) -> torch.Tensor:
        """``frames (B, T, H)`` with ``lengths (B,)``; ``mel (B, Tm, M)`` with ``mel_lengths (B,)``;
        ``pitch_stats (B, 3)`` from :func:`pitch_statistics` or ``None``."""
        pooled = [_mean_std(self.proj(frames), lengths), self.mel_norm(_mean_std(mel, mel_lengths))]
        return F.normalize(self.out(torch.cat(pooled + ([pitch_stats] if pitch_stats is not None else []), -1)), dim=-1)


def _mean_std(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, T, C)`` -> ``(B, 2C)``: mean and standard deviation over the real frames."""
    mask = frame_mask(lengths, x.shape[1])[..., None].to(x.dtype)
    count = mask.sum(1).clamp(min=1.0)
    mean = (x * mask).sum(1) / count
    std = (((x - mean[:, None]) ** 2 * mask).sum(1) / count).clamp(min=1e-6).sqrt()
    return torch.cat([mean, std], -1)


def length_regulate(states: torch.Tensor, durations: torch.Tensor):
    """Repeat token ``states (B, L, C)`` by integer ``durations (B, L)`` (0 drops a token):
    ``(frames (B, T, C), frame_lengths (B,))`` with ``T = max_b sum_l durations[b, l]``."""
    lengths = durations.sum(1)
    rows = [s.repeat_interleave(d, dim=0) for s, d in zip(states, durations)]
    out = nn.utils.rnn.pad_sequence(rows, batch_first=True)
    if out.shape[1] == 0:
        out = states.new_zeros(states.shape[0], 1, states.shape[2])
    return out, lengths


def pitch_contour(log_f0: torch.Tensor, voiced: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """F0 per frame ``(B, T)`` in Hz (0 unvoiced) from each token's ``log_f0 (B, L)`` (log(f0 / 100 Hz)),
    ``voiced (B, L)`` and ``durations (B, L)``: a frame is voiced when its token is, and its log F0 runs
    in a straight line between the centres of the voiced tokens (held before the first and after the
    last), as speech glides; a token's pitch held flat over its frames sounds like a buzzer."""
    voicing, lengths = length_regulate(voiced[..., None].to(log_f0.dtype), durations)
    out = torch.zeros(voicing.shape[:2], device=log_f0.device)
    ends = durations.cumsum(1)
    centres = (ends - durations / 2.0 - 0.5).float()  # frame index at the middle of each token
    for b in range(log_f0.shape[0]):
        keep = voiced[b] & (durations[b] > 0)
        if not keep.any():
            continue
        x, y = centres[b][keep], log_f0[b][keep].float()
        x, y = (torch.cat([x, x + 1.0]), torch.cat([y, y])) if len(x) == 1 else (x, y)  # one voiced token: flat
        t = torch.arange(int(lengths[b]), device=log_f0.device, dtype=torch.float32)
        right = torch.searchsorted(x, t).clamp(1, len(x) - 1)
        left = right - 1
        w = ((t - x[left]) / (x[right] - x[left]).clamp(min=1e-6)).clamp(0.0, 1.0)
        line = y[left] + w * (y[right] - y[left])
        out[b, : len(t)] = PITCH_REF_HZ * line.exp() * (voicing[b, : len(t), 0] > 0)
    return out


def _positions(length: int, dim: int, device) -> torch.Tensor:
    """Sinusoidal positions ``(length, dim)``: where a frame sits inside the utterance."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-9.2103 / dim))
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2], out[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[: dim // 2])
    return out


class SynthesisHead(nn.Module):
    """Text + reference frames -> log-mel frames, token durations and the speaker vector."""

    def __init__(self, cfg: SynthesisConfig, vocab_size: int, fused_dim: int, frame_dim: int):
        super().__init__()
        self.cfg, dim = cfg, cfg.dim
        self.embed = nn.Embedding(vocab_size, dim)
        self.fused_in = nn.Linear(fused_dim, dim)
        self.speaker = SpeakerEncoder(frame_dim, dim, cfg.speaker_dim, cfg.mel.n_mels, 3 if cfg.pitch else 0)
        self.mel = LogMel(cfg.mel)
        self.speaker_in = nn.Linear(cfg.speaker_dim, dim)
        self.encoder = nn.ModuleList(ConvBlock(dim, cfg.kernel_size, cfg.dropout) for _ in range(cfg.encoder_layers))
        self.duration = nn.ModuleList(ConvBlock(dim, 3, cfg.dropout) for _ in range(2))
        self.duration_out = nn.Linear(dim, 1)
        if cfg.pitch:
            self.pitch = nn.ModuleList(ConvBlock(dim, 3, cfg.dropout) for _ in range(2))
            self.pitch_out = nn.Linear(dim, 2)  # log(f0 / 100 Hz) about the reference's mean, voicing logit
            self.pitch_ref = nn.Linear(3, dim)
            self.pitch_in = nn.Conv1d(2, dim, 3, padding=1)
            self.comb_gain = nn.Parameter(torch.ones(cfg.mel.n_mels))  # of the harmonic pattern, per band
        self.decoder = nn.ModuleList(ConvBlock(dim, cfg.kernel_size, cfg.dropout) for _ in range(cfg.decoder_layers))
        if cfg.speaker_film:  # FiLM: a scale and shift of every decoder layer's input from the speaker vector
            self.speaker_film = nn.ModuleList(nn.Linear(cfg.speaker_dim, 2 * dim) for _ in range(cfg.decoder_layers))
            for film in self.speaker_film:  # starts as the identity
                nn.init.zeros_(film.weight)
                nn.init.zeros_(film.bias)
        self.mel_out = nn.Linear(dim, cfg.mel.n_mels)
        self.postnet = nn.ModuleList(nn.Conv1d(cfg.mel.n_mels if i == 0 else dim, dim, 5, padding=2)
                                     for i in range(cfg.postnet_layers))
        self.postnet_out = nn.Conv1d(dim, cfg.mel.n_mels, 5, padding=2)
        self.classifier = nn.Linear(cfg.speaker_dim, cfg.num_speakers, bias=False) if cfg.num_speakers else None

    def reference_voice(self, frames, frame_lengths, waveforms, lengths, pitch_stats=None):
        """``(unit speaker vector (B, S), pitch statistics (B, 3) or None)`` of references: encoder ``frames
        (B, T, H)`` with ``frame_lengths (B,)`` and their ``waveforms (B, S)`` with ``lengths (B,)``; with
        ``pitch``, their ``pitch_stats`` (:func:`pitch_statistics`) are computed here unless given."""
        with torch.autocast(waveforms.device.type, enabled=False):
            mel, mel_lengths = self.mel(waveforms.float(), lengths)
            if self.cfg.pitch and pitch_stats is None:
                pitch_stats = pitch_statistics(frame_pitch(waveforms.float(), lengths, self.cfg.mel.hop_length))
        pitch_stats = pitch_stats.float() if self.cfg.pitch else None
        return self.speaker(frames, frame_lengths, mel, mel_lengths, pitch_stats), pitch_stats

    def encode_tokens(self, tokens, token_lengths, fused, fused_index, speaker):
        """Token states ``(B, L, C)`` and predicted log durations ``(B, L)``.

        ``tokens (B, L)`` recogniser ids; ``fused (B, W, D)`` the fusion block's output for the text
        encoder's ``W`` tokens over the reference; ``fused_index (B, L)`` the text-encoder token each
        recogniser token lies in (-1: none, e.g. the silence units); ``speaker (B, S)``."""
        mask = frame_mask(token_lengths, tokens.shape[1])
        gathered = fused.gather(1, fused_index.clamp(min=0)[..., None].expand(-1, -1, fused.shape[2]))
        gathered = gathered * (fused_index >= 0)[..., None]
        x = (self.embed(tokens) + self.fused_in(gathered) + self.speaker_in(speaker)[:, None]) * mask[..., None]
        for block in self.encoder:
            x = block(x, mask)
        h = x.detach()  # the duration predictor does not steer the token states (FastSpeech)
        for block in self.duration:
            h = block(h, mask)
        return x, self.duration_out(h).squeeze(-1) * mask

    def predict_pitch(self, states, token_lengths, speaker, ref_pitch) -> torch.Tensor:
        """Predicted ``(B, L, 2)``: each token's log(f0 / 100 Hz) and voicing logit, from ``states (B, L, C)``,
        the ``speaker (B, S)`` vector and the reference's ``ref_pitch (B, 3)`` statistics: the log F0 is
        predicted as a departure from the reference's mean, so a voice's pitch level is the reference's."""
        mask = frame_mask(token_lengths, states.shape[1])
        # like the duration predictor it reads the states without steering them
        h = (states.detach() + self.speaker_in(speaker)[:, None] + self.pitch_ref(ref_pitch)[:, None]) * mask[..., None]
        for block in self.pitch:
            h = block(h, mask)
        out = self.pitch_out(h)
        level = torch.stack([ref_pitch[:, 0], torch.zeros_like(ref_pitch[:, 0])], -1)[:, None]
        return (out + level) * mask[..., None]

    def add_pitch(self, states, token_lengths, log_f0, voiced) -> torch.Tensor:
        """``states (B, L, C)`` plus the embedding of each token's ``log_f0 (B, L)`` and ``voiced (B, L)``."""
        mask = frame_mask(token_lengths, states.shape[1])[..., None]
        pitch = torch.stack([log_f0 * voiced, voiced.to(log_f0.dtype)], 1)  # (B, 2, L)
        return states + self.pitch_in(pitch).transpose(1, 2) * mask

    def decode(self, states, durations, speaker, f0=None):
        """Length-regulated states -> ``(mel (B, T, M), postnet mel (B, T, M), frame_lengths (B,))``; with
        ``pitch``, the frames' ``f0 (B, >= T)`` in Hz (0 unvoiced) puts its harmonics into the mel."""
        frames, lengths = length_regulate(states, durations)
        mask = frame_mask(lengths, frames.shape[1])
        x = (frames + self.speaker_in(speaker)[:, None] + _positions(frames.shape[1], frames.shape[2], frames.device))
        x = x * mask[..., None]
        for i, block in enumerate(self.decoder):
            if self.cfg.speaker_film:  # the voice steers every layer, not only the input
                scale, shift = self.speaker_film[i](speaker).chunk(2, -1)
                x = x * (1 + scale[:, None]) + shift[:, None]
            x = block(x, mask)
        mel = self.mel_out(x)
        if f0 is not None:  # the decoder writes the envelope; the pitch gives the harmonics
            mel = mel + self.comb_gain * harmonic_comb(f0[:, : mel.shape[1]], self.mel)
        h = mel.transpose(1, 2)
        for conv in self.postnet:
            h = torch.tanh(conv(h))
        post = mel + self.postnet_out(h).transpose(1, 2)
        return mel, post, lengths

    def loss(self, batch: dict, fused, speaker, ref_pitch=None) -> dict:
        """Losses of one batch with true ``durations (B, L)`` (mel frames) and targets ``mel (B, T, M)``
        with ``mel_lengths (B,)`` (``sum(durations) == mel_lengths``); optional ``speaker_ids (B,)``; with
        ``pitch``, the targets' ``f0 (B, T)`` per frame and ``pitch (B, L)`` / ``voiced (B, L)`` per token
        (:class:`~speechtext.synthesis_data.SynthesisBatchLoader`), and ``ref_pitch (B, 3)``."""
        token_lengths = batch["syn_token_lengths"]
        states, log_dur = self.encode_tokens(batch["syn_tokens"], token_lengths, fused, batch["syn_fused_index"], speaker)
        losses = {}
        f0 = None
        if self.cfg.pitch:  # teacher forcing: the decoder hears the target's own pitch
            predicted = self.predict_pitch(states, token_lengths, speaker, ref_pitch)
            losses.update(self._pitch_losses(predicted, batch, token_lengths))
            states, f0 = self.add_pitch(states, token_lengths, batch["pitch"], batch["voiced"]), batch["f0"]
        mel, post, lengths = self.decode(states, batch["durations"], speaker, f0)
        target, mask = batch["mel"][:, : mel.shape[1]], frame_mask(lengths, mel.shape[1])[..., None]
        count = mask.sum() * mel.shape[2]
        losses.update(mel=((mel - target).abs() * mask).sum() / count, postnet=((post - target).abs() * mask).sum() / count)
        tmask = frame_mask(batch["syn_token_lengths"], log_dur.shape[1])
        dur_err = (log_dur - torch.log1p(batch["durations"].float())) ** 2
        losses["duration"] = (dur_err * tmask).sum() / tmask.sum()
        if self.classifier is not None and "speaker_ids" in batch and (batch["speaker_ids"] >= 0).any():
            logits = 10.0 * speaker @ F.normalize(self.classifier.weight, dim=-1).t()  # cosine classifier
            losses["speaker"] = F.cross_entropy(logits, batch["speaker_ids"])
        return losses

    def infer_pitch(self, states, token_lengths, speaker, ref_pitch, durations, semitones: float = 0.0):
        """Inference's pitch: ``(states (B, L, C) with the predicted pitch added, F0 per token (B, L) and per
        frame (B, T))`` in Hz (0 unvoiced), each token's held over its ``durations (B, L)``; ``semitones``
        shifts every F0."""
        predicted = self.predict_pitch(states, token_lengths, speaker, ref_pitch)
        log_f0, voiced = predicted[..., 0] + math.log(2.0) * semitones / 12.0, predicted[..., 1] > 0
        hz = torch.where(voiced, PITCH_REF_HZ * log_f0.exp(), torch.zeros_like(log_f0))
        return self.add_pitch(states, token_lengths, log_f0, voiced), hz, pitch_contour(log_f0, voiced, durations)

    @staticmethod
    def _pitch_losses(predicted, batch: dict, token_lengths) -> dict:
        """Squared error of log F0 on the voiced tokens and cross-entropy of voicing on all."""
        tmask = frame_mask(token_lengths, predicted.shape[1]).float()
        voiced = batch["voiced"].float() * tmask
        error = (predicted[..., 0] - batch["pitch"]) ** 2 * voiced
        voicing = F.binary_cross_entropy_with_logits(predicted[..., 1], voiced, reduction="none") * tmask
        return {"pitch": error.sum() / voiced.sum().clamp(min=1.0), "voicing": voicing.sum() / tmask.sum()}

    def predict_durations(self, log_dur, token_lengths, speed: float = 1.0) -> torch.Tensor:
        """Integer mel-frame durations ``(B, L)`` from predicted log durations; ``speed`` > 1 is faster."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        frames = torch.clamp(torch.round(torch.expm1(log_dur) / speed), min=0).long()
        return frames * frame_mask(token_lengths, log_dur.shape[1])
