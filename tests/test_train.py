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
from speechtext.data import DataDirError, read_data_dir
from speechtext.train import train
from results import steps_text  # recipes/ is on sys.path: conftest.py
from conftest import finish, joint_config, kill_and_resume, tiny_config, torchrun, train_cmd


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


def test_a_model_directory_with_a_broken_config_is_named(trained_model, tmp_path):
    from speechtext.config import ConfigError

    broken = tmp_path / "model"
    shutil.copytree(trained_model, broken)
    (broken / "config.yaml").write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match=f"{broken / 'config.yaml'}: not valid YAML"):
        read_model_dir(str(broken))


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


def deterministic_config(joint: bool = False, **train):
    """``tiny_config`` (``joint_config`` with ``joint``) without dropout, SpecAugment masks or
    augmentation: what is left of a step is its data, so runs that split the same global batches
    differently must agree."""
    cfg = joint_config(**train) if joint else tiny_config(**train)
    cfg.model.encoder.overrides.update(hidden_dropout=0.0, mask_time_prob=0.0)
    cfg.model.ctc_dropout = 0.0
    if joint:
        cfg.model.text_encoder.overrides.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        cfg.model.fusion.dropout = 0.0
    return cfg


def losses(out, key: str = "loss") -> dict[int, float]:
    return {e["step"]: e[key] for e in map(json.loads, open(os.path.join(out, "metrics.jsonl"))) if key in e}


@pytest.mark.slow
@pytest.mark.parametrize("joint,batch_seconds", [(False, 8.0), (True, 8.0), (True, 3.2)],
                         ids=["ctc", "joint", "joint-batches-of-one-or-two"])
def test_two_gloo_processes_match_one_on_the_same_global_batches(joint, batch_seconds, speech_dir, tmp_path):
    """A batch is a global batch split across ranks and weighted by its share: two processes take the
    same steps on the same utterances as one, and log the same (global) loss. With the text side
    (``joint``), every rank's contrastive and command negatives are the global batch's, as in one
    process, so those losses agree too; with batches of one utterance, rank 1 has nothing of its own
    (weight 0) and still takes part in the gathers."""
    conf = tmp_path / "c.yaml"
    cfg = deterministic_config(joint, max_steps=6)
    cfg.data.max_batch_seconds = batch_seconds
    save_config(cfg, str(conf))
    assert finish(subprocess.Popen(train_cmd(conf, speech_dir, tmp_path / "one"), stderr=subprocess.PIPE, text=True)) == 0
    assert finish(torchrun(2, conf, speech_dir, tmp_path / "two")) == 0
    for key in ("loss", "ctc", "contrastive", "command") if joint else ("loss",):
        one, two = losses(tmp_path / "one", key), losses(tmp_path / "two", key)
        assert one.keys() == two.keys() == set(range(1, 7)), key
        for step in one:
            assert abs(two[step] - one[step]) <= 1e-3 * one[step], (key, step, one[step], two[step])
    assert (tmp_path / "two" / "train.log").read_text().count("validation at step 6") == 1  # rank 0 alone writes


def preempt_at(proc: subprocess.Popen, out, step: int) -> None:
    """SIGTERM to ``proc`` (torchrun passes it on to its workers) once ``out`` has logged ``step``."""
    metrics = os.path.join(out, "metrics.jsonl")
    while proc.poll() is None and not (os.path.exists(metrics) and max(losses(out), default=0) >= step):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)


@pytest.mark.slow
@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
def test_run_stopped_on_n_processes_resumes_on_m(first, then, speech_dir, tmp_path):
    """Global batches do not depend on the number of processes, so a run preempted on N processes goes
    on from the same batch and step on M and ends where an uninterrupted run ends."""
    conf = tmp_path / "c.yaml"
    # 20 steps, stopped at step 2: the signal goes through torchrun, which on a loaded 2-core CI machine
    # took longer than the 6 steps an 8-step run had left (the run finished before it landed)
    save_config(deterministic_config(max_steps=20, valid_interval=10, save_interval=100), str(conf))
    assert finish(subprocess.Popen(train_cmd(conf, speech_dir, tmp_path / "a"), stderr=subprocess.PIPE, text=True)) == 0
    start = lambda n, *extra: (torchrun(n, conf, speech_dir, tmp_path / "b", *extra) if n > 1 else
                               subprocess.Popen(train_cmd(conf, speech_dir, tmp_path / "b", *extra),
                                                stderr=subprocess.PIPE, text=True))
    proc = start(first)
    preempt_at(proc, tmp_path / "b", 2)
    try:  # torchrun itself exits 1 on SIGTERM once its workers have stopped (each with 75)
        proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the preempted run did not stop") from None
    assert proc.returncode == (75 if first == 1 else 1)
    assert "preempted (signal 15)" in (tmp_path / "b" / "train.log").read_text()
    stopped = load_checkpoint(str(tmp_path / "b" / "last.pt"))["step"]
    assert 2 <= stopped < 20, "the run finished before the signal"
    assert finish(start(then, "--resume")) == 0
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(b) == list(range(1, 21)), "a step was lost or run twice"
    assert abs(b[20] - a[20]) <= 0.01 * a[20], (a[20], b[20])


def test_an_existing_run_is_not_overwritten(trained_model, speech_dir):
    from speechtext.checkpoint import CheckpointError

    exp = os.path.dirname(trained_model)
    before = open(os.path.join(exp, "last.pt"), "rb").read()
    with pytest.raises(CheckpointError, match="holds a run already"):
        train(tiny_config(), speech_dir, speech_dir, exp)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(tiny_config(), speech_dir, speech_dir, exp + "-new", resume=True)
    assert open(os.path.join(exp, "last.pt"), "rb").read() == before


def test_amp_auto_takes_fp32_on_every_cpu(monkeypatch, caplog):
    import speechtext.train as train_module
    from speechtext.config import ConfigError
    from speechtext.precision import bf16_supported

    cpu = torch.device("cpu")
    # fp32 even where the CPU has native bf16: it trained the models here faster (README)
    assert train_module.resolve_amp("auto", cpu) == "none"
    if bf16_supported(cpu):
        assert train_module.resolve_amp("bf16", cpu) == "bf16"
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


def test_frozen_feature_encoder_and_unused_mask_embedding_stay_frozen():
    """model.encoder.freeze_feature_encoder holds through train.trainable, and the mask embedding that no
    step uses without SpecAugment time masks is not trained (DDP would wait for its gradient)."""
    from speechtext.train import build_model, make_tokenizer, set_trainable

    cfg = tiny_config()
    cfg.model.encoder.freeze_feature_encoder = True
    cfg.model.encoder.overrides["mask_time_prob"] = 0.0
    model = build_model(cfg, make_tokenizer(cfg, ["abc"]))
    trained = {id(p) for p in set_trainable(model, [])}
    names = [n for n, p in model.named_parameters() if id(p) not in trained]
    assert names and all("feature_extractor" in n or "masked_spec_embed" in n for n in names)
    assert any("masked_spec_embed" in n for n in names) and not any(p.requires_grad for n, p in model.named_parameters() if n in names)


def test_a_word_piece_model_trains_saves_loads_and_transcribes(speech_dir, tmp_path):
    import speechtext
    from speechtext.tokenizer import PieceTokenizer

    cfg = tiny_config(max_steps=2, valid_interval=2)
    cfg.model.bpe_merges = 20
    out = train(cfg, speech_dir, speech_dir, str(tmp_path / "bpe"))
    pipeline = speechtext.load_model(out)
    assert isinstance(pipeline.tokenizer, PieceTokenizer) and len(pipeline.tokenizer.merges) == 20
    assert load_checkpoint(str(tmp_path / "bpe" / "last.pt"))["tokenizer"]["kind"] == "bpe"
    wavs = [u.audio.source for u in read_data_dir(speech_dir).utterances[:2]]
    results = pipeline.transcribe(wavs, precision="fp32")
    assert len(results) == 2 and all(r.error is None for r in results)
    assert all(0 <= t < pipeline.tokenizer.vocab_size for r in results for t in r.tokens)


def test_budget_steps_fits_the_remaining_time():
    from speechtext.schedule import budget_steps

    # 100 steps took 50 s of a 60 s run: 0.5 s a step; 120 s budget, 10 s kept for the end: 100 more
    assert budget_steps(100, 50.0, 60.0, 120.0, 10.0, cap=10_000) == 200
    assert budget_steps(100, 50.0, 60.0, 120.0, 10.0, cap=150) == 150  # never beyond max_steps
    assert budget_steps(100, 50.0, 115.0, 120.0, 10.0, cap=10_000) == 100  # spent: stop now


def test_a_time_budget_ends_the_run_with_its_decay_fitted_to_the_end(speech_dir, tmp_path):
    """train.max_minutes: a run of 100 000 steps at most ends within its 15 s, its cosine decay moved to
    end at the step it stops at (a schedule left at 100 000 steps would still be near its peak)."""
    out = tmp_path / "budget"
    started = time.time()
    final = train(tiny_config(max_steps=100_000, max_minutes=0.25, valid_interval=1000, save_interval=1000, log_interval=5),
                  speech_dir, speech_dir, str(out))
    seconds = time.time() - started
    training = json.load(open(os.path.join(final, "speechtext.json")))["training"]
    assert 0 < training["steps"] < 100_000 and training["max_minutes"] == 0.25 and training["max_steps"] == 100_000
    assert seconds < 15 + 10, f"a 15 s budget took {seconds:.0f} s"
    assert "the steps that fit the 0.25-minute budget" in steps_text(training)
    logged = [json.loads(line) for line in open(out / "metrics.jsonl") if '"lr"' in line]
    assert logged[-1]["step"] == training["steps"] and logged[-1]["lr"] < 0.2 * 3e-3, logged[-1]
    assert "the run ends at step" in (out / "train.log").read_text()
    state = load_checkpoint(str(out / "last.pt"))
    assert state["total_steps"] == training["steps"] and 0 < state["clock"]["loop_seconds"] < state["clock"]["seconds"]


def test_results_say_whether_the_budget_or_the_step_cap_ended_a_run(speech_dir, tmp_path):
    """A run that does all its max_steps inside its budget must not be reported as cut by the budget."""
    final = train(tiny_config(max_steps=6, max_minutes=5, valid_interval=1000, save_interval=1000, log_interval=2),
                  speech_dir, speech_dir, str(tmp_path / "capped"))
    training = json.load(open(os.path.join(final, "speechtext.json")))["training"]
    assert training["steps"] == training["max_steps"] == 6
    assert "all of train.max_steps" in steps_text(training) and "fit the" not in steps_text(training)


@pytest.mark.slow
def test_a_time_budget_stops_every_rank_at_one_step(speech_dir, tmp_path):
    """Under DDP the ranks take rank 0's plan: were they to plan apart, one would wait forever in the
    next all-reduce and the run would time out."""
    conf = tmp_path / "c.yaml"
    save_config(tiny_config(max_steps=100_000, max_minutes=0.3, valid_interval=1000, save_interval=1000,
                            log_interval=5), str(conf))
    assert finish(torchrun(2, conf, speech_dir, tmp_path / "two"), timeout=120) == 0
    training = json.load(open(tmp_path / "two" / "final" / "speechtext.json"))["training"]
    assert 0 < training["steps"] < 100_000
