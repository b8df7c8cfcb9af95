import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import speechtext
from conftest import tone


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "speechtext.cli", *args], capture_output=True, text=True)


def test_api_and_cli_agree(trained_model, speech_dir):
    wavs = [line.split()[1] for line in open(os.path.join(speech_dir, "wav.scp"))][:5]
    results = speechtext.load_model(trained_model).transcribe(wavs, precision="fp32")
    assert [r.source for r in results] == wavs and all(r.error is None for r in results)
    out = run_cli("transcribe", trained_model, *wavs, "--format", "json", "--precision", "fp32")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["text"] for r in rows] == [r.text for r in results]


def test_batched_equals_one_at_a_time(trained_model, speech_dir):
    wavs = [line.split()[1] for line in open(os.path.join(speech_dir, "wav.scp"))]
    model = speechtext.load_model(trained_model)
    together = model.transcribe(wavs, precision="fp32", decoder="ctc", beam_size=4)
    alone = [model.transcribe([w], precision="fp32", decoder="ctc", beam_size=4)[0] for w in wavs]
    assert [r.text for r in together] == [r.text for r in alone]


def test_bad_inputs_are_reported_and_the_rest_transcribed(trained_model, speech_dir, tmp_path):
    good = [line.split()[1] for line in open(os.path.join(speech_dir, "wav.scp"))][:2]
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 4)
    data, rate = sf.read(good[0])
    import librosa

    stereo = librosa.resample(data, orig_sr=rate, target_sr=44100)
    sf.write(tmp_path / "stereo44k.wav", np.stack([stereo, stereo], 1), 44100)
    sf.write(tmp_path / "short.wav", tone(0.1), 16000)
    scp = tmp_path / "wav.scp"
    entries = {"a-good": good[0], "b-missing": str(tmp_path / "missing.wav"), "c-empty": str(tmp_path / "empty.wav"),
               "d-corrupt": str(tmp_path / "corrupt.wav"), "e-stereo": str(tmp_path / "stereo44k.wav"),
               "f-short": str(tmp_path / "short.wav"), "g-good": good[1]}
    scp.write_text("".join(f"{k} {v}\n" for k, v in entries.items()))
    out = run_cli("transcribe", trained_model, str(scp), "--format", "kaldi", "--precision", "fp32")
    assert out.returncode == 1
    ids = [line.split()[0] for line in out.stdout.splitlines()]
    assert ids == ["a-good", "e-stereo", "g-good"]
    for key, problem in [("b-missing", "file not found"), ("c-empty", "empty"), ("d-corrupt", "cannot"),
                         ("f-short", "only 0.100 s")]:
        line = next(l for l in out.stderr.splitlines() if f"skipped {key}:" in l)
        assert entries[key] in line and problem in line


def test_not_a_model_dir_is_a_clear_error(tmp_path):
    out = run_cli("transcribe", str(tmp_path), "x.wav")
    assert out.returncode == 2 and "neither a speechtext model directory" in out.stderr


def test_score_cli(tmp_path):
    (tmp_path / "ref").write_text("u1 a b c\n")
    (tmp_path / "hyp").write_text("u1 a x c\n")
    out = run_cli("score", str(tmp_path / "ref"), str(tmp_path / "hyp"))
    assert out.returncode == 0 and "%WER 33.33" in out.stdout and (tmp_path / "per_utt.pra").exists()


def test_long_inputs_and_bad_options(trained_model, tmp_path):
    sf.write(tmp_path / "long.wav", tone(4.0), 16000)
    model = speechtext.load_model(trained_model)
    result = model.transcribe([str(tmp_path / "long.wav")], max_seconds=3)[0]
    assert result.text is None and "longer than the limit of 3 s" in result.error
    with pytest.raises(ValueError, match="beam size must be at least 1"):
        model.transcribe([str(tmp_path / "long.wav")], decoder="ctc", beam_size=0)
    with pytest.raises(ValueError, match="precision must be"):
        model.transcribe([], precision="fp8")
    with pytest.raises(TypeError, match="unknown option"):
        model.transcribe([], beams=3)
