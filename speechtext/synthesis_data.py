"""Training batches of the synthesis head: the target utterance's log-mel frames and token durations
(from the recogniser's own CTC forced alignment), its text, and a reference recording of the same
voice that is never the target itself.

Like :class:`~speechtext.batching.BatchLoader`, items are whole batches keyed ``(epoch, index)`` and
every draw (batch order, the reference) comes from ``(seed, epoch, index)``, so a resumed run sees
the batches the killed run would have seen.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from .align import AlignError, token_durations
from .audio import load_audio
from .batching import EpochBatches, pad_waveforms, utterance_durations
from .config import DataConfig, MelConfig, TranscribeOptions
from .data import DataDir
from .mel import LogMel, frame_pitch, pitch_statistics, token_pitch
from .runner import encode_loaded, normalise_inputs, run_batches
from .synthesis import SynthesisError, pad_rows, synthesis_tokens

log = logging.getLogger("speechtext.synthesis")


@dataclass
class _Aligned:
    id: str
    source: str
    durations: list[int] | None = None
    error: str | None = None


def alignment_durations(pipeline, data: DataDir, mel: MelConfig, frames: dict[str, torch.Tensor] | None = None,
                        f0: dict[str, torch.Tensor] | None = None) -> dict[str, list[int]]:
    """Token durations in mel frames (silence unit, tokens, silence unit) of every utterance of ``data``
    from ``pipeline``'s CTC head, through the shared batch runner (fp32); utterances that cannot be read
    or aligned are left out (and logged). Given a dict ``frames``, the encoder frames ``(T, H)`` of every
    aligned utterance are kept in it as well, and given a dict ``f0``, its F0 per mel frame ``(Tm,)``
    (see :class:`SynthesisBatchLoader`)."""
    utts = list(data)
    items, specs = normalise_inputs([(u.utt_id, u.audio) for u in utts], _Aligned)
    tokenizer = pipeline.tokenizer

    def process(loaded):
        encoded, lengths = encode_loaded(pipeline, loaded, "fp32")
        with torch.inference_mode():
            log_probs = pipeline.model.heads["ctc"](encoded)
        if f0 is not None:
            waves, samples = pad_waveforms([w for _, w in loaded], normalise=False)
            pitch = frame_pitch(waves, samples, mel.hop_length)
        for row, (i, wave) in enumerate(loaded):
            try:
                items[i].durations = token_durations(log_probs[row, : lengths[row]].cpu(),
                                                     tokenizer.encode(utts[i].text or ""), tokenizer.blank_id,
                                                     len(wave) // mel.hop_length + 1)
            except AlignError as exc:
                items[i].error = f"{items[i].id}: {exc}"
                continue
            if frames is not None:
                frames[items[i].id] = encoded[row, : lengths[row]].cpu().clone()
            if f0 is not None:
                f0[items[i].id] = pitch[row, : len(wave) // mel.hop_length + 1].clone()

    was_training = pipeline.model.training
    pipeline.model.eval()
    run_batches(items, specs, TranscribeOptions(batch_seconds=60.0), process)
    pipeline.model.train(was_training)
    failed = [item.error for item in items if item.error]
    if failed:
        log.warning("%d of %d utterances could not be aligned and are left out, e.g. %s", len(failed), len(utts), failed[0])
    return {item.id: item.durations for item in items if item.durations is not None}


class SynthesisBatchLoader(EpochBatches):
    """Batches of (text, target mel, durations, reference of the same voice, speaker id). Targets are
    the utterances that have durations and whose speaker has at least one other utterance.

    With ``ref_frames`` (utterance id -> the frozen audio encoder's frames ``(T, H)``, from
    :func:`alignment_durations`), a batch carries its references' frames as well, so the training step
    does not run the encoder again (it was ~40 % of a step of the CPU recipe's head). With ``pitch``, a
    batch carries the targets' F0 per frame, each target token's pitch and voicing, and the references'
    pitch statistics, from the F0 of every utterance kept in ``f0`` by the same pass, if given (computing
    it at every step took a third of the CPU recipe's step)."""

    def __init__(self, data: DataDir, durations: dict[str, list[int]], tokenizer, text_tokenizer, mel: MelConfig,
                 cfg: DataConfig, seed: int, train: bool, speakers: list[str], rank: int = 0, world_size: int = 1,
                 normalise: bool = True, ref_frames: dict[str, torch.Tensor] | None = None, pitch: bool = True,
                 f0: dict[str, torch.Tensor] | None = None):
        utts = [u for u in data if u.utt_id in durations]
        by_speaker: dict[str, list[int]] = {}
        for i, u in enumerate(utts):
            by_speaker.setdefault(u.speaker or u.utt_id, []).append(i)
        self.utts, self.by_speaker = utts, by_speaker
        self.targets = [i for i, u in enumerate(utts) if len(by_speaker[u.speaker or u.utt_id]) > 1]
        all_seconds = utterance_durations(DataDir(data.path, utts))
        self.durations = [all_seconds[i] for i in self.targets]  # what batches are packed by
        self.tokens = [_tokens(data.path, u, tokenizer, text_tokenizer) for u in utts]
        self.token_durations = [durations[u.utt_id] for u in utts]
        self.speaker_index = {s: k for k, s in enumerate(speakers)}
        self.text_tokenizer, self.mel = text_tokenizer, LogMel(mel)
        self.cfg, self.seed, self.train, self.normalise = cfg, seed, train, normalise
        self.rank, self.world_size = rank, world_size
        self.ref_frames, self.pitch, self.f0 = ref_frames, pitch, f0

    def _reference(self, i: int, rng: np.random.Generator) -> int:
        """Another utterance of ``i``'s voice, drawn with ``rng``."""
        others = [j for j in self.by_speaker[self.utts[i].speaker or self.utts[i].utt_id] if j != i]
        return others[int(rng.integers(len(others)))]

    def _f0(self, utts, waveforms, lengths) -> torch.Tensor:
        """F0 per mel frame ``(B, T)`` of ``utts``, whose ``waveforms (B, S)`` have ``lengths (B,)``."""
        if self.f0 is None:
            return frame_pitch(waveforms, lengths, self.mel.cfg.hop_length)
        return torch.nn.utils.rnn.pad_sequence([self.f0[u.utt_id] for u in utts], batch_first=True)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        shared, weight = self.share(epoch, index)
        chosen = [self.targets[k] for k in shared]
        waves = [load_audio(self.utts[i].audio) for i in chosen]
        raw, lengths = pad_waveforms(waves, normalise=False)  # the mel keeps the recording's own level
        mel, mel_lengths = self.mel(raw, lengths)
        # one stream per utterance: its reference is the same however the batch is split across ranks
        refs = [self.utts[self._reference(i, np.random.default_rng([self.seed, epoch, i, 7]))] for i in chosen]
        ref_waveforms, ref_lengths = pad_waveforms([load_audio(u.audio) for u in refs], self.normalise)
        cached = {}
        if self.ref_frames is not None:
            rows = [self.ref_frames[u.utt_id] for u in refs]
            cached = {"ref_frames": torch.nn.utils.rnn.pad_sequence(rows, batch_first=True),
                      "ref_frame_lengths": torch.tensor([len(r) for r in rows], dtype=torch.long)}
        durations = pad_rows([self.token_durations[i] for i in chosen])[0]
        if self.pitch:
            f0 = self._f0([self.utts[i] for i in chosen], raw, lengths)
            pitch, voiced = token_pitch(f0, durations)
            cached.update(f0=f0, pitch=pitch, voiced=voiced,
                          ref_pitch=pitch_statistics(self._f0(refs, ref_waveforms, ref_lengths)))
        tokens, fused_index = pad_rows([self.tokens[i][0] for i in chosen])[0], pad_rows([self.tokens[i][1] for i in chosen], -1)[0]
        text_ids, text_lengths = self.text_tokenizer.encode([self.utts[i].text for i in chosen])
        speakers = [self.speaker_index.get(self.utts[i].speaker or "", -100) for i in chosen]
        return {"epoch": epoch, "index": index, "last": index == len(self.batches(epoch)) - 1, "weight": weight,
                "utt_ids": [self.utts[i].utt_id for i in chosen], "lengths": lengths,
                "mel": mel, "mel_lengths": mel_lengths, "durations": durations,
                "syn_tokens": tokens, "syn_token_lengths": torch.tensor([len(self.tokens[i][0]) for i in chosen]),
                "syn_fused_index": fused_index, "text_ids": text_ids, "text_lengths": text_lengths,
                "ref_waveforms": ref_waveforms, "ref_lengths": ref_lengths,
                "speaker_ids": torch.tensor(speakers, dtype=torch.long), **cached}


def _tokens(path: str, utt, tokenizer, text_tokenizer):
    try:
        return synthesis_tokens(utt.text or "", tokenizer, text_tokenizer)
    except SynthesisError as exc:
        raise SynthesisError(f"{path}: utterance {utt.utt_id}: {exc}") from exc


@torch.inference_mode()
def validate_synthesis(model, loader, device, world_size: int = 1) -> dict:
    """Dev losses of the synthesis head with true durations (and pitch), per utterance: ``{loss, mel, postnet,
    duration[, pitch, voicing]}``;
    under DDP (``world_size`` > 1) summed over the ranks' shares of the dev set."""
    model.eval()
    sums, utts = {}, 0
    for batch in loader:
        if not batch["weight"]:
            continue  # a rank's stand-in item (see EpochBatches.share)
        loss, stats = model({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        n = len(batch["utt_ids"])
        for key in ("loss", "mel", "postnet", "duration", "pitch", "voicing"):
            if key in stats:
                sums[key] = sums.get(key, 0.0) + stats[key] * n
        utts += n
    if world_size > 1:
        gathered = [None] * world_size
        torch.distributed.all_gather_object(gathered, (sums, utts))
        sums = {k: sum(g[0].get(k, 0.0) for g in gathered) for k in {k for g in gathered for k in g[0]}}
        utts = sum(g[1] for g in gathered)
    model.train()
    return {k: v / max(1, utts) for k, v in sums.items()}
