import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from speechtext.checkpoint import CheckpointError, load_checkpoint, read_model_dir
from speechtext.config import save_config
from speechtext.data import DataDirError
from speechtext.train import train
from conftest import kill_and_resume, tiny_config, train_cmd


def test_each_run_logs_into_its_own_directory(speech_dir, tmp_path):
    for name in ("one", "two"):
        train(tiny_config(max_steps=2, valid_interval=2), speech_dir, speech_dir, str(tmp_path / name))
    one, two = (open(tmp_path / n / "train.log").read() for n in ("one", "two"))
    assert one.count("averaged") == 1 and two.count("averaged") == 1 and str(tmp_path / "two") not in one


def test_training_writes_model_dir_log_and_curve(trained_model):
    exp = os.path.dirname(trained_model)
    for name in ("train.log", "loss_curve.png", "metrics.jsonl", "last.pt", "config.yaml"):
        assert os.path.exists(os.path.join(exp, name)), name
    config, tokenizer, weights = read_model_dir(trained_model)
    assert config.model.encoder.hf_config["hidden_size"] == 32 and tokenizer.vocab_size > 10
    log = open(os.path.join(exp, "train.log")).read()
    assert "validation at step 6" in log and "averaged" in log


def test_killed_run_resumes_exactly(speech_dir, tmp_path):
    conf = tmp_path / "c.yaml"
    save_config(tiny_config(max_steps=10), str(conf))
    assert subprocess.run(train_cmd(conf, speech_dir, tmp_path / "a"), capture_output=True).returncode == 0
    killed_at = kill_and_resume(conf, speech_dir, tmp_path / "b", max_steps=10)
    last = tmp_path / "b" / "last.pt"
    assert f"resuming from {last} at step {killed_at}" in (tmp_path / "b" / "train.log").read_text()
    a = load_file(str(tmp_path / "a" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_preempted_run_checkpoints_exits_75_and_resumes_exactly(sig, speech_dir, tmp_path):
    """Slurm's warning signal (or SIGTERM) mid-run: last.pt at the next step, exit 75, and the resumed
    run ends with the weights of an uninterrupted one; no step is run twice."""
    from speechtext.train import PREEMPTED_EXIT

    conf = tmp_path / "c.yaml"
    save_config(tiny_config(max_steps=12, valid_interval=6, save_interval=100), str(conf))
    assert subprocess.run(train_cmd(conf, speech_dir, tmp_path / "a"), capture_output=True).returncode == 0
    out = tmp_path / "b"
    proc = subprocess.Popen(train_cmd(conf, speech_dir, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    while proc.poll() is None and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == PREEMPTED_EXIT, err[-2000:]
    assert "run again with --resume" in err
    stopped_at = load_checkpoint(str(out / "last.pt"))["step"]
    assert 2 <= stopped_at < 12 and not (out / "final").exists()
    resumed = subprocess.run(train_cmd(conf, speech_dir, out, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if '"lr"' in line]
    assert steps == list(range(1, 13))  # each step logged once: none lost, none run twice
    a = load_file(str(tmp_path / "a" / "final" / "model.safetensors"))
    b = load_file(str(out / "final" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_duplicate_ids_are_refused_with_the_line(speech_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(speech_dir, bad)
    lines = open(bad / "text").read().splitlines()
    with open(bad / "text", "a") as handle:
        handle.write(lines[0] + "\n")
    with pytest.raises(DataDirError, match=rf"text:{len(lines) + 1}: duplicate id '{lines[0].split()[0]}'"):
        train(tiny_config(), str(bad), speech_dir, str(tmp_path / "exp"))


def test_cli_refuses_bad_data_dir_and_bad_config(speech_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(speech_dir, bad)
    with open(bad / "wav.scp", "a") as handle:
        handle.write("zzz /no/such/file.wav\n")
    conf = tmp_path / "c.yaml"
    save_config(tiny_config(), str(conf))
    cmd = [sys.executable, "-m", "speechtext.cli", "train", "--config", str(conf), "--train-dir", str(bad),
           "--valid-dir", speech_dir, "--out-dir", str(tmp_path / "exp")]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2 and "file not found: /no/such/file.wav" in out.stderr and "wav.scp:" in out.stderr
    conf.write_text("train:\n  lrate: 1\n")
    cmd[cmd.index("--train-dir") + 1] = speech_dir
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2 and "unknown key 'lrate'" in out.stderr


def test_torn_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cannot read the checkpoint"):
        load_checkpoint(str(path))


@pytest.mark.slow
def test_ddp_two_processes_on_gloo(speech_dir, tmp_path):
    conf = tmp_path / "c.yaml"
    save_config(tiny_config(max_steps=3), str(conf))
    cmd = ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "speechtext.cli", "train", "--config", str(conf),
           "--train-dir", speech_dir, "--valid-dir", speech_dir, "--out-dir", str(tmp_path / "ddp")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), cmd[0])] + cmd[1:], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert os.path.exists(tmp_path / "ddp" / "final" / "model.safetensors")
    log = open(tmp_path / "ddp" / "train.log").read()
    assert log.count("validation at step 3") == 1  # rank 0 alone writes


def test_an_existing_run_is_not_overwritten(trained_model, speech_dir):
    from speechtext.checkpoint import CheckpointError

    exp = os.path.dirname(trained_model)
    before = open(os.path.join(exp, "last.pt"), "rb").read()
    with pytest.raises(CheckpointError, match="holds a run already"):
        train(tiny_config(), speech_dir, speech_dir, exp)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(tiny_config(), speech_dir, speech_dir, exp + "-new", resume=True)
    assert open(os.path.join(exp, "last.pt"), "rb").read() == before


def test_amp_auto_takes_bf16_only_where_the_cpu_has_it(monkeypatch, caplog):
    import speechtext.train as train_module
    from speechtext.config import ConfigError
    from speechtext.precision import bf16_supported

    cpu = torch.device("cpu")
    assert train_module.resolve_amp("auto", cpu) == ("bf16" if bf16_supported(cpu) else "none")
    assert train_module.resolve_amp("none", cpu) == "none"
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        train_module.resolve_amp("fp16", cpu)
    with pytest.raises(ConfigError, match="not one of auto"):
        train_module.resolve_amp("bf17", cpu)
    # An AVX2-only CPU: auto falls back to fp32, and forcing bf16 warns that it is emulated.
    monkeypatch.setattr(train_module, "bf16_supported", lambda device: False)
    assert train_module.resolve_amp("auto", cpu) == "none"
    with caplog.at_level("WARNING", logger=train_module.log.name):
        assert train_module.resolve_amp("bf16", cpu) == "bf16"
    assert "without native bf16" in caplog.text


def test_model_dir_records_the_precision_that_ran(trained_model):
    import json

    with open(os.path.join(trained_model, "speechtext.json"), encoding="utf-8") as handle:
        training = json.load(handle)["training"]
    assert training["precision"] == "none"
