"""Data prep on miniature copies of the Fluent Speech Commands and Speech Commands v2 layouts."""
import os
import subprocess
import sys

import pytest
import soundfile as sf

from speechtext.corpora import prepare_fsc
from speechtext.data import DataDirError, read_data_dir
from conftest import tone


def make_fsc(root):
    header = "index,path,speakerId,transcription,action,object,location\n"
    rows = {"train": [("spkA", "u1", "Turn on the lights", "activate", "lights", "none"),
                      ("spkB", "u2", "Lights off in the kitchen", "deactivate", "lights", "kitchen")],
            "valid": [("spkC", "u3", "Bring me my shoes", "bring", "shoes", "none")],
            "test": [("spkD", "u4", "Switch the language", "change language", "none", "none")]}
    os.makedirs(root / "data")
    for split, items in rows.items():
        lines = []
        for n, (spk, stem, text, action, obj, loc) in enumerate(items):
            rel = f"wavs/speakers/{spk}/{stem}.wav"
            os.makedirs(root / os.path.dirname(rel), exist_ok=True)
            sf.write(root / rel, tone(0.5), 16000)
            lines.append(f"{n},{rel},{spk},{text},{action},{obj},{loc}\n")
        (root / "data" / f"{split}_data.csv").write_text(header + "".join(lines))


def test_fsc(tmp_path):
    make_fsc(tmp_path / "fsc")
    assert prepare_fsc(str(tmp_path / "fsc"), str(tmp_path / "out")) == {"train": 2, "valid": 1, "test": 1}
    train = read_data_dir(str(tmp_path / "out" / "train"))
    assert [(u.utt_id, u.text, u.intent, u.speaker) for u in train] == [
        ("spkA-u1", "Turn on the lights", "activate_lights_none", "spkA"),
        ("spkB-u2", "Lights off in the kitchen", "deactivate_lights_kitchen", "spkB")]
    assert read_data_dir(str(tmp_path / "out" / "test")).utterances[0].intent == "change_language_none_none"


def test_fsc_missing_file_names_the_csv_line(tmp_path):
    make_fsc(tmp_path / "fsc")
    os.remove(tmp_path / "fsc" / "wavs/speakers/spkB/u2.wav")
    with pytest.raises(DataDirError, match=r"train_data.csv:3: audio file not found"):
        prepare_fsc(str(tmp_path / "fsc"), str(tmp_path / "out"))


def test_gsc_splits_by_lists_and_skips_background_noise(tmp_path):
    root = tmp_path / "gsc"
    files = ["yes/aaa_nohash_0.wav", "yes/bbb_nohash_0.wav", "no/aaa_nohash_1.wav", "no/ccc_nohash_0.wav",
             "left/ddd_nohash_0.wav", "_background_noise_/white_noise.wav"]
    for rel in files:
        os.makedirs(root / os.path.dirname(rel), exist_ok=True)
        sf.write(root / rel, tone(0.3), 16000)
    (root / "validation_list.txt").write_text("no/ccc_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/bbb_nohash_0.wav\nleft/ddd_nohash_0.wav\n")
    out = subprocess.run([sys.executable, "-m", "speechtext.cli", "prepare-corpus", "gsc", str(root), str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "out/train: 2 utterances" in out.stdout and "out/test: 2 utterances" in out.stdout
    train = read_data_dir(str(tmp_path / "out" / "train"))
    assert sorted((u.speaker, u.text, u.intent) for u in train) == [("aaa", "no", "no"), ("aaa", "yes", "yes")]
    assert [u.intent for u in read_data_dir(str(tmp_path / "out" / "valid"))] == ["no"]
