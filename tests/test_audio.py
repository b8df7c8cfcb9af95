import numpy as np
import pytest
import soundfile as sf

from speechtext.audio import AudioError, AudioSpec, load_audio, normalize
from conftest import espeak, tone


def test_stereo_44k_is_mixed_and_resampled(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, tone(1.0, 44100, channels=2), 44100)
    samples = load_audio(str(path))
    assert samples.ndim == 1 and abs(len(samples) - 16000) <= 1 and samples.dtype == np.float32


def test_flac_and_segment(tmp_path):
    path = espeak("turn on the lights", str(tmp_path / "a.wav"))
    data, rate = sf.read(path)
    sf.write(tmp_path / "a.flac", data, rate)
    full = load_audio(str(tmp_path / "a.flac"))
    part = load_audio(AudioSpec(str(tmp_path / "a.flac"), 0.2, 0.7))
    assert len(part) == 8000 and np.allclose(part, full[3200:11200], atol=1e-4)


def test_raw_pcm_and_pipe(tmp_path):
    wave = (tone(0.5) * 32767).astype("<i2")
    wave.tofile(tmp_path / "a.pcm")
    assert len(load_audio(str(tmp_path / "a.pcm"))) == 8000
    sf.write(tmp_path / "b.wav", tone(0.5), 16000)
    assert len(load_audio(f"cat {tmp_path / 'b.wav'} |")) == 8000


@pytest.mark.parametrize("kind, message", [("missing", "file not found"), ("empty", "empty"),
                                           ("corrupt", "cannot decode"), ("short", "only 0.050 s")])
def test_bad_files_name_the_file_and_problem(tmp_path, kind, message):
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(b"RIFF\x00\x00garbage" * 10)
    elif kind == "short":
        sf.write(path, tone(0.05), 16000)
    with pytest.raises(AudioError) as err:
        load_audio(str(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_too_long_is_refused(tmp_path):
    sf.write(tmp_path / "long.wav", tone(3.0), 16000)
    with pytest.raises(AudioError, match="longer than the limit"):
        load_audio(str(tmp_path / "long.wav"), max_seconds=2)


def test_silence_normalises_without_nan():
    out = normalize(np.zeros(16000, dtype=np.float32))
    assert np.isfinite(out).all() and not out.any()
