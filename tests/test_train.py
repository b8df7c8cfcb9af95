import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from speechtext.checkpoint import CheckpointError, load_checkpoint, read_model_dir
from speechtext.config import save_config
from speechtext.data import DataDirError
from speechtext.train import train
from conftest import tiny_config


def test_training_writes_model_dir_log_and_curve(trained_model):
    exp = os.path.dirname(trained_model)
    for name in ("train.log", "loss_curve.png", "metrics.jsonl", "last.pt", "config.yaml"):
        assert os.path.exists(os.path.join(exp, name)), name
    config, tokenizer, weights = read_model_dir(trained_model)
    assert config.model.encoder.hf_config["hidden_size"] == 32 and tokenizer.vocab_size > 10
    log = open(os.path.join(exp, "train.log")).read()
    assert "validation at step 6" in log and "averaged" in log


def test_resume_continues_exactly(speech_dir, tmp_path):
    cfg = tiny_config(max_steps=6)
    straight = train(cfg, speech_dir, speech_dir, str(tmp_path / "a"))
    # A run stopped after step 3 (its last.pt is what a killed run leaves), then resumed.
    train(tiny_config(max_steps=3), speech_dir, speech_dir, str(tmp_path / "b"))
    state = load_checkpoint(str(tmp_path / "b" / "last.pt"))
    assert state["step"] == 3
    state["config"] = state["config"].replace('"max_steps": 3', '"max_steps": 6')
    torch.save(state, str(tmp_path / "b" / "last.pt"))
    resumed = train(cfg, speech_dir, speech_dir, str(tmp_path / "b"), resume=True)
    a, b = load_file(os.path.join(straight, "model.safetensors")), load_file(os.path.join(resumed, "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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
