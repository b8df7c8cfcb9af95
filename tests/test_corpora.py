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


def write_tone(path, seconds=0.5, rate=16000):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    sf.write(str(path), tone(seconds, rate), rate)


def test_gsc_12_classes_keep_10_percent_unknown_and_silence(tmp_path):
    from speechtext.corpora import prepare_gsc

    root = tmp_path / "gsc"
    for n in range(20):  # 20 command words and 5 other words in train, 10 commands in valid
        write_tone(root / "yes" / f"s{n:02d}_nohash_0.wav")
        if n < 5:
            write_tone(root / "marvin" / f"s{n:02d}_nohash_0.wav")
        if n < 10:
            write_tone(root / "no" / f"v{n:02d}_nohash_0.wav")
    write_tone(root / "_background_noise_" / "pink_noise.wav", seconds=30.0)
    (root / "validation_list.txt").write_text("".join(f"no/v{n:02d}_nohash_0.wav\n" for n in range(10)))
    (root / "testing_list.txt").write_text("")
    counts = prepare_gsc(str(root), str(tmp_path / "out"), task=12)
    train = read_data_dir(str(tmp_path / "out" / "train"))
    by_intent = lambda data: sorted(u.intent for u in data)
    assert by_intent(train) == ["_silence_"] * 2 + ["_unknown_"] * 2 + ["yes"] * 20  # ceil(10 % of 20) each
    assert [u.text for u in train if u.intent == "_unknown_"] == ["marvin", "marvin"]
    assert {u.text for u in train if u.intent == "_silence_"} == {""}
    assert by_intent(read_data_dir(str(tmp_path / "out" / "valid"))) == ["_silence_"] + ["no"] * 10
    assert counts == {"train": 24, "valid": 11, "test": 0}


def test_fsc_holdout_moves_phrasings_to_test_zeroshot(tmp_path):
    import corpus_layouts

    root = tmp_path / "fsc"
    os.makedirs(root / "data")
    header = ",path,speakerId,transcription,action,object,location\n"
    for split in ("train", "valid", "test"):
        lines = []
        for k, (text, action, obj, location) in enumerate(corpus_layouts.FSC_ROWS):
            rel = f"wavs/speakers/s{split}/{k}.wav"
            write_tone(root / rel)
            lines.append(f"{k},{rel},s{split},{text},{action},{obj},{location}\n")
        (root / "data" / f"{split}_data.csv").write_text(header + "".join(lines))
    counts = prepare_fsc(str(root), str(tmp_path / "out"), holdout=0.34)
    held = {u.text for u in read_data_dir(str(tmp_path / "out" / "test_zeroshot"))}
    assert len(held) == counts["test_zeroshot"] == 3  # round(0.34 x 3 or 2) = 1 phrasing of each intent
    for split in ("train", "valid", "test"):
        assert not held & {u.text for u in read_data_dir(str(tmp_path / "out" / split))}
    assert {u.intent for u in read_data_dir(str(tmp_path / "out" / "train"))} == {
        "activate_lights_none", "deactivate_music_none", "bring_shoes_none"}  # every intent keeps a phrasing


def test_librispeech_missing_flac_names_the_transcript_line(tmp_path):
    from speechtext.corpora_speech import prepare_librispeech

    chapter = tmp_path / "LibriSpeech" / "dev-clean" / "84" / "121123"
    write_tone(chapter / "84-121123-0000.flac")
    (chapter / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS\n")
    with pytest.raises(DataDirError, match=r"84-121123.trans.txt:2: audio file not found"):
        prepare_librispeech(str(tmp_path / "LibriSpeech"), str(tmp_path / "out"), ["dev-clean"])
    with pytest.raises(DataDirError, match=r"expected .*test-clean/<speaker>/<chapter>.* https://www.openslr.org/12"):
        prepare_librispeech(str(tmp_path / "LibriSpeech"), str(tmp_path / "out"), ["test-clean"])


def test_ljspeech_malformed_metadata_line_is_named(tmp_path):
    from speechtext.corpora_speech import prepare_ljspeech

    write_tone(tmp_path / "lj" / "wavs" / "LJ001-0001.wav", rate=22050)
    (tmp_path / "lj" / "metadata.csv").write_text("LJ001-0001|Printing, in the only sense|Printing, in the only sense\n"
                                                  "LJ001-0002 in being comparatively modern.\n")
    with pytest.raises(DataDirError, match=r"metadata.csv:2: expected 'id\|text\|normalised text'"):
        prepare_ljspeech(str(tmp_path / "lj"), str(tmp_path / "out"), 0, 0)


def test_vctk_080_layout_and_wrong_layout(tmp_path):
    from speechtext.corpora_speech import prepare_vctk

    root = tmp_path / "VCTK-Corpus"
    for speaker in ("p225", "p226"):
        for n in (1, 2):
            write_tone(root / "wav48" / speaker / f"{speaker}_{n:03d}.wav", rate=48000)
            os.makedirs(root / "txt" / speaker, exist_ok=True)
            (root / "txt" / speaker / f"{speaker}_{n:03d}.txt").write_text("Please call Stella.\n")
    write_tone(root / "wav48" / "p226" / "p226_003.wav", rate=48000)  # no transcript
    counts = prepare_vctk(str(root), str(tmp_path / "out"))
    assert counts == {"train": 1, "dev": 1, "test": 2, "no_transcript": 1}
    with pytest.raises(DataDirError, match=r"wav48_silence_trimmed/<speaker>.* or .*wav48/.*datashare.ed.ac.uk"):
        prepare_vctk(str(tmp_path / "nothing"), str(tmp_path / "out"))
