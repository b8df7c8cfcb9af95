"""The Slurm backend on a one-node Slurm cluster started here (tools/slurm_cluster.sh): the recipe's
training stage as a batch job of torchrun over 2 gloo processes, Slurm's warning signal mid-run, the job
requeued and resumed, and the same losses as an uninterrupted run with no step lost or run twice."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import corpus_layouts
from conftest import ROOT, copy_egs, run_egs

STEPS = ("--set train.max_steps=10 --set train.warmup_steps=1 --set train.valid_interval=5 --set train.log_interval=1 "
         "--set train.save_interval=100 --set train.accum_grad=1 --set train.amp=none --set data.num_workers=0 "
         "--set data.max_batch_seconds=4 --set model.fusion.dim=32 --set model.fusion.ff_dim=64 --set model.fusion.heads=2 "
         "--set model.embed_dim=16 --set model.text_encoder.vocab_size=100")


@pytest.fixture
def slurm(tmp_path):
    """A running one-node cluster; yields the environment its clients need."""
    if not all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        pytest.skip("Slurm is not installed (bash tools/slurm_cluster.sh install; .ci/run does)")
    env = {**os.environ, "SLURM_CTLD_PORT": "7817", "SLURMD_PORT": "7818"}
    script = os.path.join(ROOT, "tools", "slurm_cluster.sh")
    started = subprocess.run(["bash", script, "start", str(tmp_path / "cluster")], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield {"SLURM_CONF": str(tmp_path / "cluster" / "slurm.conf")}
    finally:
        subprocess.run(["bash", script, "stop", str(tmp_path / "cluster")], env=env, capture_output=True)


def losses(exp) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in map(json.loads, open(exp / "metrics.jsonl")) if "loss" in e]


@pytest.mark.slow
def test_slurm_job_preempted_requeues_and_resumes_exactly(slurm, tmp_path, tiny_pretrained):
    corpus_layouts.make_speech_commands(tmp_path / "gsc")
    args = ["--corpus-dir", str(tmp_path / "gsc"), "--pretrained", tiny_pretrained, "--stop-stage", "2",
            "--train-opts", STEPS]
    os.environ.update(nproc_per_node="2")
    try:
        reference = copy_egs("speech_commands", tmp_path / "local")
        out = run_egs(reference, *args)
        assert out.returncode == 0, out.stderr[-3000:]
        recipe = copy_egs("speech_commands", tmp_path / "slurm")
        env = {**os.environ, **slurm, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(["bash", "run.sh", *args, "--backend", "slurm"], cwd=recipe, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        exp = recipe / "exp" / "train_task35"
        deadline = time.time() + 300
        while proc.poll() is None and not (exp / "metrics.jsonl").exists() or len(losses(exp)) < 3:
            assert time.time() < deadline and proc.poll() is None, "the job did not start training"
            time.sleep(0.2)
        job = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True).stdout.split()
        assert len(job) == 1, job
        subprocess.run(["scancel", "--signal=USR1", "--batch", job[0]], env=env, check=True)  # Slurm's warning
        log, _ = proc.communicate(timeout=600)
    finally:
        os.environ.pop("nproc_per_node")
    assert proc.returncode == 0, log[-4000:]
    job_log = (exp / f"slurm-{job[0]}.out").read_text()
    assert "preempted: requeueing" in job_log and f"job {job[0]} (restart 1)" in job_log, job_log[-3000:]
    assert "resuming from" in (exp / "train.log").read_text()
    got, want = losses(exp), losses(reference / "exp" / "train_task35")
    assert [s for s, _ in got] == list(range(1, 11)), "a step was lost or run twice"
    for (step, a), (_, b) in zip(got, want):
        assert abs(a - b) <= 0.01 * abs(b), (step, a, b)
