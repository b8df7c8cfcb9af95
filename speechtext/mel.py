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


PITCH_REF_HZ = 100.0  # pitch travels as log(f0 / PITCH_REF_HZ): about -0.5..1.6 for speech


def frame_pitch(waveforms: torch.Tensor, lengths: torch.Tensor, hop_length: int, sample_rate: int = SAMPLE_RATE,
                f_min: float = 60.0, f_max: float = 500.0, frame_length: int = 1024, threshold: float = 0.15,
                voicing: float = 0.5, gate_db: float = 40.0) -> torch.Tensor:
    """F0 in Hz of ``waveforms (B, S)`` with ``lengths (B,)``, ``(B, T)``, 0 where unvoiced; frame ``t`` is
    centred on sample ``t * hop_length`` and ``T = S // hop_length + 1``, as :class:`LogMel`'s frames.

    YIN (de Cheveigne & Kawahara, 2002), batched with FFTs: the first dip of the cumulative-mean-normalised
    difference under ``threshold`` (else its minimum), refined by a parabola. A frame is voiced when that
    dip is under ``voicing`` and the frame is within ``gate_db`` of its utterance's loudest frame."""
    max_lag, min_lag = int(sample_rate / f_min), max(2, int(sample_rate / f_max))
    width = frame_length - max_lag  # YIN's integration window
    x = torch.nn.functional.pad(waveforms.float(), (frame_length // 2, frame_length // 2))
    frames = x.unfold(1, frame_length, hop_length)  # (B, T, N)
    n = frame_length  # the window's samples j < width reach j + lag < frame_length: no circular wrap
    corr = torch.fft.irfft(torch.fft.rfft(frames[..., :width], n).conj() * torch.fft.rfft(frames, n), n)[..., : max_lag + 1]
    energy = torch.cumsum(frames.pow(2), -1)
    e_lag = torch.cat([energy[..., width - 1: width], energy[..., width: width + max_lag] - energy[..., :max_lag]], -1)
    diff = (energy[..., width - 1: width] + e_lag - 2 * corr).clamp(min=0)  # (B, T, max_lag + 1)
    lags = torch.arange(1, max_lag + 1, device=x.device, dtype=diff.dtype)
    cmnd = diff[..., 1:] * lags / torch.cumsum(diff[..., 1:], -1).clamp(min=1e-12)  # lag 1..max_lag
    window = cmnd[..., min_lag - 1:]  # lags min_lag..max_lag
    dips = (window[..., 1:-1] < threshold) & (window[..., 1:-1] <= window[..., :-2]) & (window[..., 1:-1] <= window[..., 2:])
    first = torch.where(dips.any(-1), dips.float().argmax(-1) + 1, window.argmin(-1).clamp(1, window.shape[-1] - 2))
    around = window.gather(-1, torch.stack([first - 1, first, first + 1], -1))
    left, mid, right = around.unbind(-1)
    curve = left - 2 * mid + right
    shift = torch.where(curve.abs() > 1e-9, 0.5 * (left - right) / curve, torch.zeros_like(curve)).clamp(-1, 1)
    f0 = sample_rate / (first + min_lag + shift)
    frame_energy = energy[..., width - 1]  # of the integration window: a frame whose window is silent is unvoiced
    num = torch.div(lengths.to(x.device), hop_length, rounding_mode="floor") + 1
    real = torch.arange(f0.shape[1], device=x.device)[None] < num[:, None]
    loudest = (frame_energy * real).amax(1, keepdim=True)
    voiced = (mid < voicing) & real & (frame_energy > loudest * 10 ** (-gate_db / 10)) & (frame_energy > 1e-8)
    return torch.where(voiced, f0, torch.zeros_like(f0))


def pitch_statistics(f0: torch.Tensor) -> torch.Tensor:
    """``f0 (B, T)`` in Hz (0 unvoiced) -> ``(B, 3)``: mean and standard deviation of log(f0 / PITCH_REF_HZ)
    over the voiced frames, and the voiced fraction of the frames that have sound."""
    voiced = (f0 > 0).float()
    count = voiced.sum(1).clamp(min=1.0)
    log_f0 = torch.log(f0.clamp(min=1.0) / PITCH_REF_HZ) * voiced
    mean = log_f0.sum(1) / count
    std = (((log_f0 - mean[:, None]) ** 2 * voiced).sum(1) / count).clamp(min=1e-6).sqrt()
    return torch.stack([mean, std, voiced.mean(1)], -1)


def harmonic_comb(f0: torch.Tensor, mel: LogMel, floor: float = 0.05) -> torch.Tensor:
    """The log-mel pattern of harmonics at ``f0 (B, T)`` Hz (0 unvoiced): ``(B, T, n_mels)``, zero-mean
    over the bands of each frame and 0 on unvoiced frames.

    Each harmonic ``k * f0`` is a Hann window's main lobe in ``mel``'s STFT; the filterbank takes the
    comb to mel bands, and ``floor`` (of the frame's strongest band) stands for the noise between the
    harmonics. A spectral envelope plus this pattern is the log-mel of a voiced frame (source-filter):
    the synthesis decoder writes the envelope and adds the pattern, instead of having to learn where a
    given pitch puts its harmonics."""
    cfg = mel.cfg
    bin_hz = mel.sample_rate / cfg.n_fft
    freqs = torch.arange(cfg.n_fft // 2 + 1, device=f0.device, dtype=torch.float32) * bin_hz  # (F,)
    hz = f0.float().clamp(min=1.0)[..., None]  # (B, T, 1)
    offset = torch.remainder(freqs, hz)
    nearest = torch.where(freqs < hz, hz - freqs, torch.minimum(offset, hz - offset)) / bin_hz  # to a harmonic, in bins
    width = cfg.n_fft / cfg.win_length  # the main lobe spans +-2 bins of the window's own FFT
    delta = nearest / width
    lobe = (torch.sinc(delta) / (1 - delta ** 2).abs().clamp(min=1e-4)).abs() * (delta < 2)
    banded = lobe @ mel.fbank  # (B, T, M)
    log_comb = torch.log(banded + floor * banded.amax(-1, keepdim=True) + 1e-8)
    return (log_comb - log_comb.mean(-1, keepdim=True)) * (f0 > 0)[..., None]


def token_pitch(f0: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token pitch of frame-level ``f0 (B, T)`` (Hz, 0 unvoiced) over integer ``durations (B, L)`` in
    frames: ``(log(f0 / PITCH_REF_HZ) averaged over the token's voiced frames (B, L), voiced (B, L))``, a
    token being voiced when at least half its frames are (0 and False otherwise)."""
    batch, tokens = durations.shape
    owner = torch.repeat_interleave(torch.arange(batch * tokens, device=f0.device), durations.reshape(-1).clamp(min=0))
    counts = durations.clamp(min=0).sum(1)
    frame = torch.cat([torch.arange(int(c), device=f0.device) for c in counts]) if batch else owner
    rows = torch.repeat_interleave(torch.arange(batch, device=f0.device), counts)
    hz = f0[rows, frame.clamp(max=f0.shape[1] - 1)] * (frame < f0.shape[1])
    is_voiced = (hz > 0).float()
    log_hz = torch.log(hz.clamp(min=1.0) / PITCH_REF_HZ) * is_voiced
    voiced_frames = torch.zeros(batch * tokens, device=f0.device).index_add_(0, owner, is_voiced)
    total = torch.zeros(batch * tokens, device=f0.device).index_add_(0, owner, log_hz)
    voiced = (voiced_frames * 2 >= durations.reshape(-1).float()) & (voiced_frames > 0)
    mean = torch.where(voiced, total / voiced_frames.clamp(min=1), torch.zeros_like(total))
    return mean.view(batch, tokens), voiced.view(batch, tokens)


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
