"""The data-dir tools every recipe shares: combine, subset, split, speed perturbation, duration filter."""
import os
import subprocess
import sys

import pytest

from speechtext.audio import load_audio
from speechtext.data import DataDirError, read_data_dir, validate_data_dir
from speechtext import datadir_tools as tools


def cli(*args):
    return subprocess.run([sys.executable, "-m", "speechtext.cli", "data", *args], capture_output=True, text=True)


def test_speed_perturbation_makes_three_copies_whose_audio_is_resampled(speech_dir, tmp_path):
    out = cli("speed-perturb", speech_dir, str(tmp_path / "sp"))
    assert out.returncode == 0, out.stderr
    original, perturbed = read_data_dir(speech_dir), read_data_dir(str(tmp_path / "sp"))
    assert len(perturbed.utterances) == 3 * len(original.utterances) and not validate_data_dir(str(tmp_path / "sp"))
    by_id = {u.utt_id: u for u in perturbed}
    first = original.utterances[0]
    slow, fast = by_id[f"sp0.9-{first.utt_id}"], by_id[f"sp1.1-{first.utt_id}"]
    assert slow.speaker == f"sp0.9-{first.speaker}" and slow.text == first.text and slow.intent == first.intent
    samples = len(load_audio(first.audio))
    assert abs(len(load_audio(slow.audio)) - samples / 0.9) < 200 and abs(len(load_audio(fast.audio)) - samples / 1.1) < 200
    assert abs(slow.duration - first.duration / 0.9) < 0.01


def test_subset_split_and_combine_round_trip(speech_dir, tmp_path):
    assert tools.subset(speech_dir, str(tmp_path / "first"), first=5) == 5
    assert tools.subset(speech_dir, str(tmp_path / "rest"), last=11) == 11
    parts = tools.split(speech_dir, 3)
    speakers = [{u.speaker for u in read_data_dir(p)} for p in parts]
    assert all(speakers) and not set.intersection(*speakers)  # a speaker is in one part only
    assert tools.combine(str(tmp_path / "all"), [str(tmp_path / "first"), str(tmp_path / "rest")]) == 16
    for name in ("wav.scp", "text", "utt2spk", "spk2utt", "utt2intent"):
        assert open(tmp_path / "all" / name).read() == open(os.path.join(speech_dir, name)).read(), name


def test_combine_refuses_one_id_with_two_meanings(speech_dir, tmp_path):
    tools.subset(speech_dir, str(tmp_path / "a"), first=2)
    tools.subset(speech_dir, str(tmp_path / "b"), first=2)
    text = tmp_path / "b" / "text"
    text.write_text(text.read_text().replace("turn on the lights", "something else", 1))
    with pytest.raises(DataDirError, match="also in .* with another value"):
        tools.combine(str(tmp_path / "c"), [str(tmp_path / "a"), str(tmp_path / "b")])


def test_duration_filter_keeps_the_range_and_reports_the_rest(tmp_path, speech_dir):
    durations = sorted(u.duration for u in read_data_dir(speech_dir))
    cut = durations[len(durations) // 2]
    out = cli("filter", speech_dir, str(tmp_path / "short"), "--max-seconds", str(cut))
    assert out.returncode == 0, out.stderr
    kept = read_data_dir(str(tmp_path / "short"))
    assert all(u.duration <= cut for u in kept) and f"{len(kept.utterances)} utterances kept" in out.stdout


def test_a_bad_source_is_a_clear_error(tmp_path):
    os.makedirs(tmp_path / "bad")
    (tmp_path / "bad" / "wav.scp").write_text("b x.wav\na y.wav\n")
    out = cli("subset", str(tmp_path / "bad"), str(tmp_path / "out"), "--first", "1")
    assert out.returncode == 2 and "wav.scp:2: 'a' is out of order" in out.stderr


def test_speed_perturbation_of_a_piped_wav_scp(speech_dir, tmp_path):
    """A wav.scp entry that is already a command (Kaldi's ``... |``) is piped on into sox."""
    tools.subset(speech_dir, str(tmp_path / "one"), first=1)
    scp = tmp_path / "one" / "wav.scp"
    utt, path = scp.read_text().split()
    scp.write_text(f"{utt} sox {path} -t wav - |\n")
    tools.speed_perturb(str(tmp_path / "one"), str(tmp_path / "sp"), (1.1,))
    perturbed = read_data_dir(str(tmp_path / "sp")).utterances[0]
    assert perturbed.audio.source == f"sox {path} -t wav - | sox -t wav - -t wav - speed 1.1 |"
    assert abs(len(load_audio(perturbed.audio)) - len(load_audio(path)) / 1.1) < 200


def test_relative_audio_paths_still_resolve_after_a_split(speech_dir, tmp_path):
    import shutil

    shutil.copytree(os.path.dirname(speech_dir), tmp_path / "corpus")
    data = tmp_path / "corpus" / "data"
    scp = data / "wav.scp"
    scp.write_text("".join(f"{k} ../{os.path.basename(v)}\n" for k, v in (line.split() for line in scp.read_text().splitlines())))
    for part in tools.split(str(data), 2):
        assert all(os.path.exists(u.audio.source) for u in read_data_dir(part))
