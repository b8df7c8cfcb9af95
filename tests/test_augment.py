"""Voice and channel augmentation: each does what it says on a signal whose F0 and formant are known,
options at probability 0 change nothing, and every draw comes from the seeded generator."""
import dataclasses

import numpy as np
import pytest
from scipy.signal import lfilter, welch

from speechtext.augment import _resample, augment, shift_pitch, telephone, warp_formants
from speechtext.config import DataConfig

SR = 16000


def vowel(f0: float = 120.0, formant: float = 900.0, seconds: float = 1.0) -> np.ndarray:
    """A glottal pulse train at ``f0`` (white noise with ``f0=0``: a whisper, whose spectrum has no
    harmonics to bias the formant estimate) through one resonance at ``formant`` Hz."""
    pulses = np.zeros(int(SR * seconds))
    if f0:
        pulses[:: int(SR / f0)] = 1.0
    else:
        pulses = np.random.default_rng(0).standard_normal(len(pulses))
    r, theta = np.exp(-np.pi * 100 / SR), 2 * np.pi * formant / SR
    out = lfilter([1], [1, -2 * r * np.cos(theta), r * r], pulses)
    return (out / np.abs(out).max() * 0.5).astype(np.float32)


def f0_of(x: np.ndarray) -> float:
    x = x[:4000] - x[:4000].mean()
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    low, high = SR // 400, SR // 60
    return SR / (low + int(np.argmax(ac[low:high])))


def formant_of(x: np.ndarray) -> float:
    """Peak of the cepstrally smoothed long-term spectrum between 200 and 3000 Hz."""
    freqs, power = welch(x, SR, nperseg=512)
    cepstrum = np.fft.irfft(np.log(power + 1e-12))
    cepstrum[25:-24] = 0
    envelope = np.fft.rfft(cepstrum).real[: len(freqs)]
    band = (freqs > 200) & (freqs < 3000)
    return float(freqs[band][np.argmax(envelope[band])])


@pytest.mark.parametrize("factor", [0.88, 1.12])
def test_formant_warp_moves_the_envelope_and_keeps_f0(factor):
    x = vowel()
    y = warp_formants(x, factor)
    assert len(y) == len(x)
    assert abs(f0_of(y) - f0_of(x)) < 2.0
    whisper = vowel(f0=0)
    ratio = formant_of(warp_formants(whisper, factor)) / formant_of(whisper)
    assert abs(ratio - factor) < 0.04, ratio


@pytest.mark.parametrize("semitones", [-3.0, 3.0])
def test_pitch_shift_moves_f0_and_keeps_the_formant(semitones):
    x = vowel()
    factor = 2 ** (semitones / 12)
    assert abs(f0_of(shift_pitch(x, semitones)) / f0_of(x) - factor) < 0.02
    # Resampling alone moves the formant with F0 (by 16-19 %); the envelope warp brings it back.
    whisper = vowel(f0=0)
    plain = abs(formant_of(_resample(whisper, SR * factor, SR)) / formant_of(whisper) - 1.0)
    kept = abs(formant_of(shift_pitch(whisper, semitones)) / formant_of(whisper) - 1.0)
    assert plain > 0.12 and kept < 0.05, (plain, kept)


@pytest.mark.parametrize("codec", ["gsm", "mulaw"])
def test_telephone_band_keeps_length_and_nothing_above_4k(codec):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SR) * 0.1).astype(np.float32)
    y = telephone(x, codec)
    assert len(y) == len(x) and y.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    assert spectrum[freqs > 4000].sum() < 0.01 * spectrum.sum()
    assert spectrum[(freqs > 500) & (freqs < 3000)].sum() > 0.5 * spectrum.sum()
    # The codec really ran: the output is not just the band-passed input.
    assert 0.3 < np.std(y) / np.std(x) < 1.5


def test_options_at_zero_draw_nothing_and_seeds_repeat():
    x = vowel(seconds=0.5)
    base = DataConfig(speed_perturb=[0.9, 1.1], noise_prob=0.5, reverb_prob=0.3)
    # New options present at probability 0 leave the audio of the old config bit-identical.
    off = dataclasses.replace(base, pitch_prob=0.0, formant_prob=0.0, telephone_prob=0.0, pitch_semitones=[-6.0, 6.0])
    for seed in range(5):
        assert np.array_equal(augment(x, base, np.random.default_rng(seed)), augment(x, off, np.random.default_rng(seed)))
    full = dataclasses.replace(base, pitch_prob=1.0, formant_prob=1.0, telephone_prob=1.0)
    a, b = (augment(x, full, np.random.default_rng(7)) for _ in range(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, augment(x, full, np.random.default_rng(8)))
    assert not np.array_equal(a[: len(x)], augment(x, base, np.random.default_rng(7))[: len(x)])
