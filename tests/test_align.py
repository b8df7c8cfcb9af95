"""Forced alignment to words, chunk windows and their joiner, subtitle and CTM writers, long inputs."""
import os

import numpy as np
import pytest
import soundfile as sf
import torch

import speechtext
from speechtext.align import Word, align_words, chunk_windows, ctm_lines, join_chunks, to_srt, to_vtt
from speechtext.tokenizer import CharTokenizer


def peaky(tokenizer, events: dict, frames: int) -> torch.Tensor:
    """CTC log-probs ``(T, V)``: blank everywhere but the frames in ``events`` (frame -> character)."""
    probs = torch.full((frames, tokenizer.vocab_size), 0.01)
    probs[:, tokenizer.blank_id] = 1.0
    for frame, char in events.items():
        probs[frame] = 0.01
        probs[frame, tokenizer.index[char]] = 1.0
    return (probs / probs.sum(-1, keepdim=True)).log()


def test_align_words_times_and_grouping():
    tok = CharTokenizer.build(["ab c"])
    log_probs = peaky(tok, {2: "a", 3: "b", 5: "|", 7: "c"}, 10)
    words = align_words(log_probs, tok.encode("ab c"), tok, hop=0.02, offset=1.0)
    assert [w.word for w in words] == ["ab", "c"]
    assert [(round(w.start, 3), round(w.end, 3)) for w in words] == [(1.04, 1.08), (1.14, 1.16)]
    assert all(0.5 < w.score <= 1 for w in words)
    with pytest.raises(ValueError, match="need at least 4 frames"):
        align_words(log_probs[:3], tok.encode("ab c"), tok, hop=0.02)


def test_chunk_windows_tile_the_recording():
    windows = chunk_windows(95.0, 30.0, 5.0)
    keeps = [(a, b) for _, _, a, b in windows]
    assert keeps[0][0] == 0 and keeps[-1][1] == 95.0
    assert all(b1 == a2 for (_, b1), (a2, _) in zip(keeps, keeps[1:]))  # no gap, no overlap
    assert all(end - start <= 30.0 for start, end, _, _ in windows[:-1])
    assert chunk_windows(10.0, 30.0, 5.0) == [(0.0, 10.0, 0.0, 10.0)]
    assert chunk_windows(30.5, 30.0, 5.0)[-1][1] == 30.5  # a sliver joins the last window
    for chunk, stride in ((30.0, 15.0), (30.0, 20.0), (0.0, 0.0), (30.0, -1.0)):
        with pytest.raises(ValueError, match="less than half the chunk"):
            chunk_windows(100.0, chunk, stride)


def test_join_chunks_takes_each_word_once():
    truth = [Word(f"w{i}", i * 1.0, i * 1.0 + 0.6, 1.0) for i in range(25)]
    windows = chunk_windows(25.0, 10.0, 2.0)
    pieces = []
    for start, end, _, _ in windows:  # each chunk sees its words, times jittered, edge words cut off
        seen = [w for w in truth if w.start >= start and w.end <= end]
        pieces.append([Word(w.word, w.start + 0.03, w.end - 0.02, 1.0) for w in seen])
    joined = join_chunks(pieces, [(a, b) for _, _, a, b in windows])
    assert [w.word for w in joined] == [w.word for w in truth]


def test_subtitles_and_ctm():
    words = [Word("turn", 0.5, 0.8, 0.9), Word("on", 0.85, 1.0, 0.8), Word("lights", 3.2, 3.7, 0.7)]
    srt = to_srt(words)
    assert srt.startswith("1\n00:00:00,500 --> 00:00:01,000\nturn on\n\n2\n00:00:03,200 --> 00:00:03,700\nlights\n")
    assert to_vtt(words).startswith("WEBVTT\n\n00:00:00.500 --> 00:00:01.000\nturn on\n")
    assert ctm_lines("utt1", words)[2] == "utt1 1 3.200 0.500 lights 0.70"


def test_long_input_is_chunked_and_joined(trained_model, speech_dir, tmp_path):
    waves = [sf.read(line.split()[1])[0] for line in open(os.path.join(speech_dir, "wav.scp"))]
    gap = np.zeros(8000)
    long = np.concatenate([np.concatenate([w, gap]) for w in waves])  # ~30 s
    sf.write(tmp_path / "long.wav", long, 16000)
    model = speechtext.load_model(trained_model)
    result = model.transcribe([str(tmp_path / "long.wav")], chunk_seconds=8.0, stride_seconds=2.0, precision="fp32")[0]
    assert result.error is None and result.duration == pytest.approx(len(long) / 16000, abs=0.01)
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and all(0 <= w.start < w.end <= result.duration + 0.05 for w in result.words)
    assert result.text == " ".join(w.word for w in result.words)
    with pytest.raises(ValueError, match="less than half the chunk"):
        model.transcribe([str(tmp_path / "long.wav")], chunk_seconds=8.0, stride_seconds=4.0)


def test_word_timestamps_and_subtitle_cli(trained_model, speech_dir, tmp_path):
    import subprocess
    import sys

    wav = open(os.path.join(speech_dir, "wav.scp")).readline().split()[1]
    out = subprocess.run([sys.executable, "-m", "speechtext.cli", "transcribe", trained_model, wav, "--format", "srt",
                          "--output-dir", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    path = out.stdout.strip()
    assert path.endswith(".srt") and os.path.exists(path)
    ctm = subprocess.run([sys.executable, "-m", "speechtext.cli", "align", trained_model, speech_dir],
                         capture_output=True, text=True)
    assert ctm.returncode == 0, ctm.stderr
    rows = [line.split() for line in ctm.stdout.splitlines()]
    utts = {line.split()[0]: line.split()[1:] for line in open(os.path.join(speech_dir, "text"))}
    assert {r[0] for r in rows} == set(utts)  # every utterance aligned, word for word
    assert all(len([r for r in rows if r[0] == u]) == len(words) for u, words in utts.items())
