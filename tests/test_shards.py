"""Lhotse Shar shards: conversion from a Kaldi dir, and training from the shards as from the dir."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from speechtext.audio import AudioError, load_audio
from speechtext.data import DataDirError, read_data_dir
from speechtext.train import train
from conftest import tiny_config

pytest.importorskip("lhotse")


@pytest.fixture(scope="module")
def shar_dir(speech_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("shar") / "train"
    done = subprocess.run([sys.executable, "-m", "speechtext.cli", "data", "to-shar", speech_dir, str(out),
                           "--shard-size", "5"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return str(out)


def test_shards_hold_every_utterance_with_its_labels_and_samples(speech_dir, shar_dir):
    assert len([f for f in os.listdir(shar_dir) if f.startswith("recording.")]) == 4  # 16 utterances, 5 a shard
    original, sharded = read_data_dir(speech_dir), read_data_dir(shar_dir)
    fields = lambda u: (u.utt_id, u.text, u.speaker, u.intent, round(u.duration, 2))
    assert [fields(u) for u in original] == [fields(u) for u in sharded]
    for a, b in zip(original.utterances[:3], sharded.utterances[:3]):
        assert b.audio.source.startswith(shar_dir) and np.array_equal(load_audio(a.audio), load_audio(b.audio))


def test_training_from_shards_is_the_run_from_the_dir(speech_dir, shar_dir, tmp_path):
    a = train(tiny_config(max_steps=4, valid_interval=4), speech_dir, speech_dir, str(tmp_path / "dir"))
    b = train(tiny_config(max_steps=4, valid_interval=4), shar_dir, speech_dir, str(tmp_path / "shar"))
    wa, wb = load_file(os.path.join(a, "model.safetensors")), load_file(os.path.join(b, "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_missing_or_truncated_shard_is_named(shar_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(shar_dir, broken)
    os.remove(broken / "recording.000003.tar")
    with pytest.raises(DataDirError, match="recording.000003.tar is missing"):
        read_data_dir(str(broken))
    os.remove(broken / "cuts.000003.jsonl.gz")
    tar = broken / "recording.000002.tar"
    last = read_data_dir(str(broken)).utterances[-1]
    assert last.audio.source.startswith(str(tar))
    with open(tar, "r+b") as handle:
        handle.truncate(2000)
    with pytest.raises(AudioError, match="the shard is truncated"):  # read with the offsets of before
        load_audio(last.audio)
    with pytest.raises(DataDirError, match="recording.000002.tar: cannot read the shard"):  # its size changed
        read_data_dir(str(broken))


@pytest.mark.slow
def test_two_processes_on_uneven_shards_finish_without_hanging(shar_dir, speech_dir, tmp_path):
    """Shards of 5, 5, 5 and 1 utterances and batches that hold a single utterance: both ranks still take
    every step (a rank without an utterance of its own repeats one with weight 0) and the run ends."""
    from speechtext.config import save_config
    from conftest import finish, torchrun
    from test_train import losses

    cfg = tiny_config(max_steps=0, max_epochs=2, valid_interval=0)
    cfg.data.max_batch_seconds = 2.6  # most batches hold one or two utterances: fewer than ranks, or odd
    save_config(cfg, str(tmp_path / "c.yaml"))
    assert finish(torchrun(2, tmp_path / "c.yaml", shar_dir, tmp_path / "out"), timeout=300) == 0
    steps = sorted(losses(tmp_path / "out"))
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 8
    assert (tmp_path / "out" / "final" / "model.safetensors").exists()
