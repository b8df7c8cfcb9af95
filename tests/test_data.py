import os

import pytest

from speechtext.data import DataDirError, fix_data_dir, read_data_dir, validate_data_dir


def write(dir_, name, lines):
    with open(os.path.join(dir_, name), "w") as handle:
        handle.write("".join(line + "\n" for line in lines))


@pytest.fixture
def wavs(tmp_path):
    from conftest import tone
    import soundfile as sf

    for i in range(3):
        sf.write(tmp_path / f"u{i}.wav", tone(0.5), 16000)
    return tmp_path


def test_valid_dir_reads(wavs):
    d = wavs / "data"
    d.mkdir()
    write(d, "wav.scp", [f"u{i} {wavs}/u{i}.wav" for i in range(3)])
    write(d, "text", ["u0 hello world", "u1 a b", "u2 c"])
    write(d, "utt2spk", ["u0 s", "u1 s", "u2 s"])
    write(d, "spk2utt", ["s u0 u1 u2"])
    data = read_data_dir(str(d))
    assert [u.utt_id for u in data] == ["u0", "u1", "u2"] and data.utterances[0].text == "hello world"


def test_problems_are_reported_with_file_and_line(wavs):
    d = wavs / "data"
    d.mkdir()
    write(d, "wav.scp", [f"u1 {wavs}/u1.wav", f"u0 {wavs}/u0.wav", f"u2 {wavs}/nope.wav", f"u1 {wavs}/u1.wav"])
    write(d, "text", ["u0 hi", "u1 there", "u3 orphan"])
    problems = validate_data_dir(str(d))
    joined = "\n".join(problems)
    assert "wav.scp:2: 'u0' is out of order" in joined
    assert "wav.scp:4: duplicate id 'u1' (first on line 1)" in joined
    assert "wav.scp:3: 'u2': file not found" in joined
    assert "text:3: 'u3' is not in wav.scp" in joined
    with pytest.raises(DataDirError, match="duplicate id 'u1'"):
        read_data_dir(str(d))


def test_fix_data_dir_sorts_dedups_and_intersects(wavs):
    d = wavs / "data"
    d.mkdir()
    write(d, "wav.scp", [f"u1 {wavs}/u1.wav", f"u0 {wavs}/u0.wav", f"u1 {wavs}/u1.wav", f"u2 {wavs}/u2.wav"])
    write(d, "text", ["u2 c", "u0 a", "u1 b", "u9 x"])
    write(d, "utt2spk", ["u0 s1", "u1 s2", "u2 s1"])
    dropped = fix_data_dir(str(d))
    assert dropped == {"wav.scp": 1, "text": 1, "utt2spk": 0}
    assert validate_data_dir(str(d)) == []
    assert open(d / "spk2utt").read() == "s1 u0 u2\ns2 u1\n"
    assert os.path.exists(d / ".backup" / "wav.scp")


def test_segments(wavs):
    d = wavs / "data"
    d.mkdir()
    write(d, "wav.scp", [f"rec {wavs}/u0.wav"])
    write(d, "segments", ["rec-a rec 0.0 0.2", "rec-b rec 0.2 0.5"])
    write(d, "text", ["rec-a x", "rec-b y"])
    data = read_data_dir(str(d))
    assert [(u.audio.start, u.audio.end) for u in data] == [(0.0, 0.2), (0.2, 0.5)]
