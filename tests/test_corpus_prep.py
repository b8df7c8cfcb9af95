"""Recipe data preparation: real human speech (8 kHz, stereo) read correctly, the real-digits test
set, and a clear stop with the install command when a synthesiser or voice package is missing."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechtext.audio import load_audio
from speechtext.data import read_data_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL = os.path.join(ROOT, "egs", "synth_commands", "local")
DIGITS = "/usr/share/asterisk/sounds/en_US_f_Allison/digits"
needs_asterisk = pytest.mark.skipif(not os.path.exists(f"{DIGITS}/5.wav"),
                                    reason="asterisk-core-sounds-en-wav is not installed (tools/setup.sh installs it)")


def run_local(script, *args, env=None):
    env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, os.path.join(LOCAL, script), *args], capture_output=True, text=True, env=env)


@needs_asterisk
def test_real_8k_speech_and_a_stereo_copy_are_read_at_16k(tmp_path):
    original, rate = sf.read(f"{DIGITS}/5.wav", dtype="float32")
    assert rate == 8000
    mono = load_audio(f"{DIGITS}/5.wav")
    assert abs(len(mono) - 2 * len(original)) <= 2
    # Resampling keeps the speech: every other sample lands back on the original, up to filter ripple.
    even = mono[: 2 * len(original): 2]
    assert np.corrcoef(even, original[: len(even)])[0, 1] > 0.98
    # The telephone band stays empty: no energy created above 4 kHz.
    spectrum = np.abs(np.fft.rfft(mono)) ** 2
    assert spectrum[len(spectrum) // 2 + 200:].sum() < 1e-3 * spectrum.sum()
    stereo = tmp_path / "stereo8k.wav"
    sf.write(stereo, np.stack([original, original * 0.5], axis=1), 8000, subtype="PCM_16")
    assert np.allclose(load_audio(str(stereo)), mono * 0.75, atol=2e-4)


@needs_asterisk
def test_real_digits_set_is_spliced_from_the_recordings(tmp_path):
    out = run_local("make_real_digits.py", "--num", "4", "--data-dir", str(tmp_path / "data"),
                    "--wav-dir", str(tmp_path / "wav"))
    assert out.returncode == 0, out.stderr
    data = read_data_dir(str(tmp_path / "data"))
    assert len(data) == 4
    for utt in data:
        words = utt.text.split()
        assert 3 <= len(words) <= 6 and utt.intent == "digits_plain" and utt.speaker == "allison"
        samples, rate = sf.read(utt.audio.source)
        assert rate == 16000
        # Each digit is at least ~0.3 s of real speech, each pause 100-300 ms.
        assert 0.3 * len(words) < len(samples) / rate < 1.2 * len(words) + 0.6
    again = run_local("make_real_digits.py", "--num", "4", "--data-dir", str(tmp_path / "data2"),
                      "--wav-dir", str(tmp_path / "wav2"))
    assert again.returncode == 0
    assert open(tmp_path / "data" / "text").read() == open(tmp_path / "data2" / "text").read()  # fixed seed


@needs_asterisk
def test_real_training_prompts_never_say_a_digit(tmp_path):
    # The digit recordings of this speaker are the real test set: training must not hear her say one.
    out = run_local("make_real_prompts.py", "--copies", "2", "--data-dir", str(tmp_path / "data"),
                    "--wav-dir", str(tmp_path / "wav"))
    assert out.returncode == 0, out.stderr
    data = read_data_dir(str(tmp_path / "data"))
    assert len(data) > 600  # ~380 prompts, two copies each
    digits = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh"}
    sources = {utt.audio.source for utt in data}
    assert len(sources) * 2 == len(data)
    for utt in data:
        assert utt.speaker == "allison" and utt.intent is None
        assert not digits & set(utt.text.split()) and utt.text == utt.text.lower()
        assert "/digits/" not in utt.audio.source and "_digits_" not in utt.audio.source
    samples, rate = sf.read(sorted(sources)[0])
    assert rate == 16000 and 0.2 < len(samples) / rate <= 15  # resampled from 8 kHz, trimmed
    assert {"please enter your password followed by the pound key", "activated"} <= {u.text for u in data}


def test_missing_recordings_stop_with_the_install_command(tmp_path):
    out = run_local("make_real_digits.py", "--num", "2", "--sounds", str(tmp_path / "nowhere"),
                    "--data-dir", str(tmp_path / "d"), "--wav-dir", str(tmp_path / "w"))
    assert out.returncode != 0
    assert "0.wav is missing" in out.stderr and "apt-get install -y asterisk-core-sounds-en-wav" in out.stderr


def test_missing_synthesisers_stop_data_prep_with_the_install_commands(tmp_path):
    # A PATH without the Debian synthesisers: data prep must name each one and how to install it.
    env = {"PATH": os.path.dirname(sys.executable)}
    out = run_local("make_corpus.py", "--data-dir", str(tmp_path / "d"), "--wav-dir", str(tmp_path / "w"),
                    "--num-train", "2", "--num-festival", "2", "--num-dev", "1", "--num-test", "1", "--num-flite", "1",
                    "--num-zeroshot", "1", env=env)
    assert out.returncode != 0
    for command in ("apt-get install -y espeak-ng", "apt-get install -y flite",
                    "apt-get install -y festival festvox-kdlpc16k"):
        assert command in out.stderr
    assert not (tmp_path / "d").exists()
