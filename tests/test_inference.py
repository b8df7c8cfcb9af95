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


def test_batches_are_length_sorted_and_carry_little_padding(tmp_path):
    """Inputs are packed longest first under the padded budget, and a batch takes no input shorter
    than ``1 - max_padding`` of its longest (padded frames cost as much as real ones)."""
    from speechtext.audio import AudioSpec
    from speechtext.config import TranscribeOptions
    from speechtext.recognition import Transcript
    from speechtext.runner import plan_batches

    seconds = [1.0, 8.0, 7.6, 4.0, 3.9, 3.7, 1.05, 7.0]
    specs = []
    for i, s in enumerate(seconds):
        sf.write(tmp_path / f"{i}.wav", tone(s), 16000)
        specs.append(AudioSpec(str(tmp_path / f"{i}.wav")))
    items = lambda: [Transcript(id=str(i), source=spec.source) for i, spec in enumerate(specs)]
    batches, _ = plan_batches(items(), specs, TranscribeOptions(batch_seconds=160))
    assert batches == [[1, 2], [7], [3, 4, 5], [6, 0]]
    batches, _ = plan_batches(items(), specs, TranscribeOptions(batch_seconds=160, max_padding=1.0))
    assert batches == [[1, 2, 7, 3, 4, 5, 6, 0]]
    batches, _ = plan_batches(items(), specs, TranscribeOptions(batch_seconds=16, max_padding=1.0))
    assert batches == [[1, 2], [7, 3], [4, 5, 6, 0]]


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
    # A path that is not there is tried as a hub id; offline, that must end in one clear line, not a traceback.
    missing = subprocess.run([sys.executable, "-m", "speechtext.cli", "transcribe", "exp/no-such-model", "x.wav"],
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert missing.returncode == 2 and "exp/no-such-model: no such model directory" in missing.stderr
    assert "Traceback" not in missing.stderr


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
    with pytest.raises(ValueError, match="max padding must be between 0 and 1"):
        model.transcribe([str(tmp_path / "long.wav")], max_padding=1.5)
    with pytest.raises(ValueError, match="precision must be"):
        model.transcribe([], precision="fp8")
    with pytest.raises(TypeError, match="unknown option"):
        model.transcribe([], beams=3)


def test_the_cpu_gemm_is_a_rule_of_the_machine_not_a_timing():
    """The GEMM choice moves the last bits of every fp32 result, so it must not change between
    processes on one machine: oneDNN only where PyTorch runs AVX-512 kernels on an AMD CPU, MKL
    elsewhere (an AVX2 CPU here), and the environment variable overrides it."""
    import torch

    code = """
import os
from speechtext.precision import onednn_linear_preferred
for choice in ("auto", "onednn", "mkl", "fast"):
    os.environ["SPEECHTEXT_CPU_GEMM"] = choice
    try:
        print(onednn_linear_preferred())
    except ValueError as exc:
        print(exc)
"""
    # ATEN_CPU_CAPABILITY is read when torch loads: PyTorch's kernels on AVX2 whatever this CPU has
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "ATEN_CPU_CAPABILITY": "avx2"})
    auto, onednn, mkl, bad = run.stdout.splitlines()
    assert (auto, onednn, mkl) == ("False", str(torch.backends.mkldnn.is_available()), "False"), run.stdout
    assert "SPEECHTEXT_CPU_GEMM must be auto, mkl or onednn, not 'fast'" in bad


def test_onednn_linear_mode_matches_linear_and_follows_weight_changes():
    """fp32 linear layers through oneDNN (where it is the faster GEMM): the same numbers as PyTorch's,
    small inputs and autograd left to PyTorch, and a weight changed in place is converted again."""
    import torch

    from speechtext.precision import ONEDNN_MIN_ROWS, OneDNNLinear

    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 48)
    x = torch.randn(3, ONEDNN_MIN_ROWS, 64)
    with torch.inference_mode():
        expected = layer(x)
        with OneDNNLinear():
            got = layer(x)
            small = layer(x[0, :4])
        assert torch.allclose(got, expected, atol=1e-5) and torch.equal(small, layer(x[0, :4]))
        assert id(layer.weight) in OneDNNLinear._packed
    with torch.no_grad():
        layer.weight.mul_(2.0)
    with torch.inference_mode(), OneDNNLinear():
        assert torch.allclose(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-5)
    with OneDNNLinear():
        out = layer(x)  # autograd on: PyTorch's own linear, which has a backward
    out.sum().backward()
    assert layer.weight.grad is not None
