"""The one log-mel feature of synthesis, and the vocoders that turn it back into a waveform.

:class:`LogMel` computes the training targets of the synthesis head and holds the filterbank that
inversion undoes, so the two can never disagree. A vocoder is a named seam: ``get_vocoder(name, mel)``
returns a callable ``(log_mel (B, T, M), lengths (B,)) -> list of float32 waveforms``. The default,
``griffin-lim``, needs no weights (torchaudio's Griffin-Lim over the filterbank's pseudo-inverse);
:func:`register_vocoder` plugs in a neural one without touching the head.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from .audio import SAMPLE_RATE
from .config import MelConfig


class LogMel(nn.Module):
    """Natural-log mel magnitude spectrogram: ``(B, S)`` waveforms -> ``(B, T, n_mels)``, where
    frame ``t`` is centred on sample ``t * hop_length`` and ``T = S // hop_length + 1``."""

    def __init__(self, cfg: MelConfig, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        import torchaudio.functional as AF

        if cfg.f_max > sample_rate / 2 or cfg.f_min < 0 or cfg.f_min >= cfg.f_max:
            raise ValueError(f"mel band {cfg.f_min}-{cfg.f_max} Hz does not fit {sample_rate} Hz audio")
        self.cfg, self.sample_rate = cfg, sample_rate
        fbank = AF.melscale_fbanks(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, sample_rate,
                                   norm="slaney", mel_scale="slaney")  # (F, M)
        self.register_buffer("fbank", fbank, persistent=False)
        self.register_buffer("inverse", torch.linalg.pinv(fbank), persistent=False)  # (M, F)
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)

    @property
    def hop_seconds(self) -> float:
        return self.cfg.hop_length / self.sample_rate

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Frames of ``num_samples`` (any shape, integer): the same rule as :meth:`forward`."""
        return torch.div(num_samples, self.cfg.hop_length, rounding_mode="floor") + 1

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None):
        """``waveforms (B, S)`` (float, about [-1, 1]) -> ``(log_mel (B, T, M), frame_lengths (B,))``;
        frames past each length are set to the floor (silence)."""
        cfg = self.cfg
        spec = torch.stft(waveforms.float(), cfg.n_fft, cfg.hop_length, cfg.win_length, self.window,
                          center=True, pad_mode="reflect", return_complex=True).abs()  # (B, F, T)
        mel = torch.log(torch.clamp(self.fbank.t() @ spec, min=cfg.floor)).transpose(1, 2)
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], device=waveforms.device)
        frame_lengths = self.num_frames(lengths).clamp(max=mel.shape[1])
        pad = torch.arange(mel.shape[1], device=mel.device)[None] >= frame_lengths[:, None]
        return mel.masked_fill(pad[..., None], float(np.log(cfg.floor))), frame_lengths

    def magnitudes(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(T, M)`` log-mel -> ``(F, T)`` linear magnitudes (least-squares inverse of the filterbank)."""
        return (self.inverse.t() @ log_mel.float().exp().t()).clamp(min=0.0)


def griffin_lim(mel: LogMel, n_iter: int = 32) -> Callable:
    """Griffin-Lim vocoder (torchaudio) over ``mel``'s filterbank; deterministic (zero-phase start)."""
    import torchaudio.functional as AF

    cfg = mel.cfg

    def vocode(log_mel: torch.Tensor, lengths: torch.Tensor) -> list[np.ndarray]:
        out = []
        for frames, n in zip(log_mel, lengths.tolist()):
            spec = mel.magnitudes(frames[:n])
            wave = AF.griffinlim(spec, mel.window, cfg.n_fft, cfg.hop_length, cfg.win_length, power=1.0,
                                 n_iter=n_iter, momentum=0.99, length=(n - 1) * cfg.hop_length, rand_init=False)
            out.append(wave.clamp(-1.0, 1.0).cpu().numpy().astype(np.float32))
        return out

    return vocode


_VOCODERS: dict[str, Callable] = {"griffin-lim": lambda mel, cfg: griffin_lim(mel, cfg.griffin_lim_iters)}


def register_vocoder(name: str, factory: Callable) -> None:
    """Make ``factory(mel: LogMel, cfg: SynthesisConfig) -> vocode`` available as ``synthesis.vocoder: name``."""
    _VOCODERS[name] = factory


def get_vocoder(name: str, mel: LogMel, cfg) -> Callable:
    """The vocoder registered as ``name``, built for ``mel`` and the synthesis config ``cfg``."""
    if name not in _VOCODERS:
        raise ValueError(f"unknown vocoder {name!r}; registered: {', '.join(sorted(_VOCODERS))}")
    return _VOCODERS[name](mel, cfg)
