import numpy as np

from speechtext.batching import augment, make_batches
from speechtext.config import DataConfig
from conftest import espeak


def test_batches_fit_the_budget_cover_everything_and_are_deterministic():
    durations = list(np.random.default_rng(0).uniform(0.5, 6.0, 500))
    batches = make_batches(durations, 30.0, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert all(max(durations[i] for i in b) * len(b) <= 30.0 for b in batches if len(b) > 1)
    assert batches == make_batches(durations, 30.0, seed=1, epoch=0)
    assert batches != make_batches(durations, 30.0, seed=1, epoch=1)


def test_augmentation_is_seeded_and_changes_the_audio(tmp_path):
    import soundfile as sf

    wave, _ = sf.read(espeak("turn on the lights", str(tmp_path / "a.wav")), dtype="float32")
    cfg = DataConfig(speed_perturb=[0.8, 1.25], eq_prob=1.0, lowpass_prob=1.0, reverb_prob=1.0, noise_prob=1.0)
    a = augment(wave, cfg, np.random.default_rng([1, 2, 3]))
    b = augment(wave, cfg, np.random.default_rng([1, 2, 3]))
    c = augment(wave, cfg, np.random.default_rng([1, 2, 4]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and np.isfinite(a).all()
    assert 0.75 * len(wave) <= len(a) <= 1.3 * len(wave)
    plain = augment(wave, DataConfig(speed_perturb=[], gain_db=0, noise_prob=0), np.random.default_rng(0))
    assert np.allclose(plain, wave)
