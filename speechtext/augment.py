"""Training-time augmentation of one utterance: voice (speed, pitch, vocal-tract length), room
(spectral colouring, reverberation), level, additive noise and the telephone channel.

Every draw comes from the ``rng`` argument, seeded per (seed, epoch, batch) by the batch loader, so
a resumed run sees the same audio. Each option has its own probability in :class:`DataConfig`, so a
recipe can switch them on one at a time; an option at probability 0 draws nothing, so adding one
leaves the audio of configs without it unchanged.
"""
from __future__ import annotations

import io

import numpy as np

from .audio import SAMPLE_RATE
from .config import DataConfig

_N_FFT, _HOP, _LIFTER = 512, 128, 30  # 32 ms frames; 30 cepstral coefficients = the envelope (formants)
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)).astype(np.float32)  # periodic Hann


def _resample(samples: np.ndarray, rate_in: float, rate_out: float, quality: str = "QQ") -> np.ndarray:
    import soxr  # librosa's resampling backend, called directly: its wrapper costs 100x more here

    return soxr.resample(samples, rate_in, rate_out, quality)


def _peaking(freq: float, gain_db: float, q: float):
    """Biquad peaking-EQ coefficients (RBJ cookbook) at ``freq`` Hz."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / SAMPLE_RATE
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return b / den[0], den / den[0]


def _overlap_add(frames: np.ndarray) -> np.ndarray:
    """Frames ``(F, N)`` a hop ``N / 4`` apart -> their sum ``((F - 1) * hop + N,)``. Frames g, g + 4,
    g + 8, ... tile the signal without overlapping, so four reshaped adds do what a loop over frames would."""
    step = _N_FFT // _HOP
    out = np.zeros((len(frames) - 1) * _HOP + _N_FFT, np.float32)
    for g in range(step):
        group = frames[g::step]
        out[g * _HOP: g * _HOP + group.size] += group.reshape(-1)
    return out


def warp_formants(samples: np.ndarray, factor: float) -> np.ndarray:
    """Vocal-tract-length warping that keeps F0: ``(S,) -> (S,)``.

    Each STFT frame's log-magnitude is split into a smooth envelope (the first cepstral coefficients:
    the formants) and the fine structure (the harmonics of F0). Only the envelope's frequency axis is
    warped, piecewise-linearly as in VTLP (Jaitly & Hinton 2013): ``f -> factor * f`` up to a knee, then
    a straight line to Nyquist, which maps to itself. The phase is kept, so timing and F0 stay.
    """
    import scipy.fft as fft  # float32 throughout: twice as fast as scipy.signal's float64 stft/istft in the loader

    if len(samples) < _N_FFT or abs(factor - 1.0) < 1e-3:
        return samples
    half = _N_FFT // 2
    padded = np.pad(samples.astype(np.float32), half, mode="reflect")
    count = -(-(len(padded) - _N_FFT) // _HOP) + 1
    padded = np.pad(padded, (0, (count - 1) * _HOP + _N_FFT - len(padded)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP] * _WINDOW
    spec = fft.rfft(frames, axis=-1)  # (frames, F)
    cepstrum = fft.irfft(np.log(np.abs(spec) + 1e-8), n=_N_FFT, axis=-1)
    cepstrum[:, _LIFTER:-_LIFTER + 1] = 0.0
    envelope = fft.rfft(cepstrum, axis=-1).real
    bins = np.arange(spec.shape[1], dtype=np.float32)
    top = bins[-1]
    knee = 0.8 * top * min(1.0, 1.0 / factor)
    # The source bin each output bin reads: the inverse of the warp w(f).
    warped_knee = factor * knee
    source = np.where(bins <= warped_knee, bins / factor,
                      knee + (bins - warped_knee) * (top - knee) / max(top - warped_knee, 1e-6))
    low = np.clip(np.floor(source).astype(int), 0, len(bins) - 1)
    high = np.minimum(low + 1, len(bins) - 1)
    frac = (source - low).astype(np.float32)
    new_envelope = envelope[:, low] * (1 - frac) + envelope[:, high] * frac
    out = _overlap_add(fft.irfft(spec * np.exp(new_envelope - envelope), n=_N_FFT, axis=-1) * _WINDOW)
    norm = _overlap_add(np.broadcast_to(_WINDOW**2, frames.shape))[half: half + len(samples)]
    return (out[half: half + len(samples)] / np.maximum(norm, 1e-8)).astype(np.float32)


def shift_pitch(samples: np.ndarray, semitones: float) -> np.ndarray:
    """Move F0 by ``semitones`` with the formants kept where they were: ``(S,) -> (S',)``.

    Resampling moves F0, formants and tempo together by ``p``; warping the envelope back by ``1/p``
    returns the formants. The tempo keeps the factor (like speed perturbation, the length changes).
    """
    factor = 2 ** (semitones / 12)
    if abs(factor - 1.0) < 1e-3:
        return samples
    return warp_formants(_resample(samples, SAMPLE_RATE * factor, SAMPLE_RATE), 1.0 / factor)


def telephone(samples: np.ndarray, codec: str) -> np.ndarray:
    """The telephone channel: 8 kHz, 300-3400 Hz, through ``mulaw`` (G.711) or ``gsm`` (GSM 06.10),
    back at 16 kHz with the input's length: ``(S,) -> (S,)``."""
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    # HQ filters: the quick ones leave images above 4 kHz, which a real 8 kHz line never carries.
    narrow = _resample(samples, SAMPLE_RATE, 8000, "HQ")
    narrow = sosfilt(butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos"), narrow)
    peak = max(1e-4, float(np.abs(narrow).max()))
    narrow = narrow / peak * 0.9  # codecs work on full-scale samples; the level is restored below
    if codec == "gsm":
        buffer = io.BytesIO()
        sf.write(buffer, narrow.astype(np.float32), 8000, format="WAV", subtype="GSM610")
        buffer.seek(0)
        narrow = sf.read(buffer, dtype="float32")[0]
    else:
        mu = 255.0
        coded = np.round(np.sign(narrow) * np.log1p(mu * np.abs(narrow)) / np.log1p(mu) * 127) / 127
        narrow = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    wide = _resample(narrow * peak / 0.9, 8000, SAMPLE_RATE, "HQ")[: len(samples)]
    return np.pad(wide, (0, len(samples) - len(wide))).astype(np.float32)


def _voice(samples: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """Speed (resampling: tempo, F0 and formants together), then pitch and vocal-tract length apart."""
    if cfg.speed_perturb:
        factor = float(rng.uniform(cfg.speed_perturb[0], cfg.speed_perturb[-1]))
        if abs(factor - 1.0) > 1e-3:
            samples = _resample(samples, SAMPLE_RATE * factor, SAMPLE_RATE)
    if cfg.pitch_prob and rng.random() < cfg.pitch_prob:
        samples = shift_pitch(samples, float(rng.uniform(*cfg.pitch_semitones)))
    if cfg.formant_prob and rng.random() < cfg.formant_prob:
        samples = warp_formants(samples, float(rng.uniform(*cfg.formant_warp)))
    return samples


def _colour(samples: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """Filters that change the spectral envelope a synthesiser or microphone imprints, not the words."""
    from scipy.signal import butter, fftconvolve, lfilter

    if rng.random() < cfg.eq_prob:
        for _ in range(rng.integers(1, 4)):
            b, a = _peaking(rng.uniform(150, 6000), rng.uniform(-12, 12), rng.uniform(0.5, 2.0))
            samples = lfilter(b, a, samples)
        tilt = rng.uniform(-0.9, 0.6)  # first-order tilt: >0 brightens, <0 darkens
        samples = lfilter([1, -tilt], [1], samples) if tilt > 0 else lfilter([1 + tilt], [1, tilt], samples)
    if rng.random() < cfg.lowpass_prob:
        b, a = butter(6, rng.uniform(3400, 7500) / (SAMPLE_RATE / 2))
        samples = lfilter(b, a, samples)
    if rng.random() < cfg.reverb_prob:
        rt60 = rng.uniform(0.1, 0.5)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        rir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path against the tail: near or far talker
        samples = fftconvolve(samples, rir / np.abs(rir).sum() * 4)[: len(samples)]
    return samples


def augment(samples: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """One training utterance ``(S,) -> (S',)`` through voice, room, level, noise and telephone
    augmentation, each drawn from ``rng`` with the probabilities of ``cfg``."""
    samples = _voice(samples, cfg, rng)
    samples = _colour(samples, cfg, rng)
    if cfg.silence_pad:
        # Recordings rarely start on the first word; the added silence gets the noise below like the speech.
        lead, trail = (int(rng.uniform(0, cfg.silence_pad) * SAMPLE_RATE) for _ in range(2))
        samples = np.concatenate([np.zeros(lead, samples.dtype), samples, np.zeros(trail, samples.dtype)])
    if cfg.gain_db:
        samples = samples * 10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20)
    if cfg.noise_prob and rng.random() < cfg.noise_prob:
        snr = rng.uniform(*cfg.noise_snr_db)
        power = float(np.mean(samples**2)) + 1e-10
        noise = rng.standard_normal(len(samples)).astype(np.float32)
        # Pink-ish noise: white noise smoothed, closer to room noise than pure hiss.
        noise = np.convolve(noise, np.ones(4, dtype=np.float32) / 4, mode="same")
        noise *= np.sqrt(power / (np.mean(noise**2) + 1e-10) / 10 ** (snr / 10))
        samples = samples + noise
    # Last: a phone line carries the talker's room and background noise along with the voice.
    if cfg.telephone_prob and rng.random() < cfg.telephone_prob:
        samples = telephone(samples, "gsm" if rng.random() < 0.5 else "mulaw")
    return samples.astype(np.float32)
