"""Shared fixtures: real speech from espeak-ng, Kaldi data dirs over it, tiny model configs."""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from speechtext.audio import AudioSpec
from speechtext.config import (Config, DataConfig, EncoderConfig, FusionConfig, ModelConfig, SynthesisConfig,
                               TextEncoderConfig, TrainConfig)
from speechtext.data import Utterance, write_data_dir

SENTENCES = ["turn on the lights", "stop the music", "move forward two meters", "call five one two",
             "play the next song", "bring me my shoes", "turn left", "pause"]
VOICES = ["en-us", "en-gb+f3", "en-gb-scotland+m2", "en-us+klatt"]

TINY_ENCODER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                "conv_dim": [16, 16, 32, 32], "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 4}


def espeak(text: str, path: str, voice: str = "en-us", rate: int = 170) -> str:
    """Synthesise ``text`` to a 16 kHz WAV at ``path`` with espeak-ng (real speech, not noise)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (tools/setup.sh installs it)")
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", text], capture_output=True, check=True).stdout
    samples, rate_in = sf.read(io.BytesIO(wav), dtype="float32")
    import librosa

    sf.write(path, librosa.resample(samples, orig_sr=rate_in, target_sr=16000), 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory):
    """A small Kaldi data dir of espeak-ng speech: 16 utterances, 4 voices."""
    root = tmp_path_factory.mktemp("speech")
    utts = []
    for v, voice in enumerate(VOICES):
        for s in range(4):
            text = SENTENCES[(v + s) % len(SENTENCES)]
            utt = f"spk{v}-utt{s}"
            path = espeak(text, str(root / f"{utt}.wav"), voice)
            intent = "_".join(text.split()[:2])
            utts.append(Utterance(utt, AudioSpec(path), text, f"spk{v}", intent, sf.info(path).duration))
    write_data_dir(str(root / "data"), utts)
    return str(root / "data")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the recipes' Python scripts (results.py, eval_peers.py, ...) are tested as modules; pytest loads this
# file before any test module, so one entry here serves them all
sys.path.insert(0, os.path.join(ROOT, "recipes"))


def copy_egs(name: str, tmp_path):
    """A copy of ``egs/<name>`` in ``tmp_path`` (without data/exp/wav), its recipes/ link pointing back here."""
    recipe = tmp_path / name
    if not recipe.exists():
        shutil.copytree(os.path.join(ROOT, "egs", name), recipe, symlinks=True,
                        ignore=shutil.ignore_patterns("data", "wav", "exp", "RESULTS.md"))
        os.remove(recipe / "recipes")
        os.symlink(os.path.join(ROOT, "recipes"), recipe / "recipes")
    return recipe


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
    """A wav2vec2 checkpoint directory as ``save_pretrained`` writes one (random weights): what a recipe's
    ``--pretrained`` loads, as it would a hub id."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from speechtext.models.audio_encoder import PRESETS

    path = tmp_path_factory.mktemp("tiny_wav2vec2")
    Wav2Vec2Model(Wav2Vec2Config(**{**PRESETS["tiny"], **TINY_ENCODER})).save_pretrained(str(path))
    return str(path)


def run_egs(recipe, *args, timeout: float = 900) -> subprocess.CompletedProcess:
    """``bash run.sh ARGS`` in ``recipe`` with this interpreter's environment first on PATH."""
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "OMP_NUM_THREADS": "1", "VIRTUAL_ENV": os.environ.get("VIRTUAL_ENV", sys.prefix)}
    return subprocess.run(["bash", "run.sh", *args], cwd=recipe, env=env, capture_output=True, text=True, timeout=timeout)


def wavs(data_dir: str) -> list[str]:
    """The audio paths of a data dir's wav.scp, in its order."""
    return [line.split()[1] for line in open(os.path.join(data_dir, "wav.scp"))]


def tiny_config(**train) -> Config:
    values = {"warmup_steps": 2, "max_steps": 6, "valid_interval": 3, "save_interval": 1, "log_interval": 1,
              "average_best": 2, "lr": 3e-3, "amp": "none", **train}
    return Config(model=ModelConfig(encoder=EncoderConfig(preset="tiny", overrides=dict(TINY_ENCODER))),
                  data=DataConfig(max_batch_seconds=8.0, num_workers=0), train=TrainConfig(**values))


@pytest.fixture(scope="session")
def trained_model(speech_dir, tmp_path_factory):
    """A model directory written by a short real training run on ``speech_dir``."""
    from speechtext.train import train

    out = tmp_path_factory.mktemp("exp")
    return train(tiny_config(), speech_dir, speech_dir, str(out / "tiny"))


def tone(seconds: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.fixture(scope="session")
def hybrid_model(speech_dir, tmp_path_factory):
    """A model directory with CTC and the attention decoder, trained a few steps."""
    from speechtext.train import train

    cfg = tiny_config(max_steps=10, valid_interval=5)
    cfg.model.heads = ["ctc", "attention"]
    cfg.model.fusion.dim, cfg.model.fusion.ff_dim = 32, 64
    return train(cfg, speech_dir, speech_dir, str(tmp_path_factory.mktemp("hybrid") / "exp"))


def joint_config(**train) -> Config:
    """``tiny_config`` with a tiny text encoder, fusion block and command head."""
    cfg = tiny_config(**train)
    cfg.model.heads = ["ctc", "command"]
    cfg.model.text_encoder = TextEncoderConfig(preset="tiny", vocab_size=200,
                                               overrides={"hidden_size": 32, "num_hidden_layers": 1,
                                                          "num_attention_heads": 2, "intermediate_size": 64})
    cfg.model.fusion = FusionConfig(dim=32, layers=1, heads=2, ff_dim=64)
    cfg.model.embed_dim = 16
    return cfg


@pytest.fixture(scope="session")
def joint_dir(speech_dir, tmp_path_factory):
    """A model directory with CTC, text encoder, fusion and command head (intents with shared parts:
    turn_on / turn_left), trained a few steps."""
    from speechtext.train import train

    cfg = joint_config(max_steps=6, valid_interval=3)
    cfg.model.intent_parts = True
    return train(cfg, speech_dir, speech_dir, str(tmp_path_factory.mktemp("joint") / "exp"))


def synthesis_config(init_from: str, **train):
    cfg = tiny_config(**{"task": "synthesis", "init_from": init_from, "trainable": ["heads.synthesis"], **train})
    cfg.model.heads = ["synthesis"]
    cfg.model.synthesis = SynthesisConfig(dim=48, encoder_layers=1, decoder_layers=2, postnet_layers=1, speaker_dim=16)
    return cfg


@pytest.fixture(scope="session")
def synthesis_dir(joint_dir, speech_dir, tmp_path_factory):
    """``joint_dir`` extended with a synthesis head trained a few steps (frozen backbone)."""
    from speechtext.train import train

    return train(synthesis_config(joint_dir, max_steps=8, valid_interval=4), speech_dir, speech_dir,
                 str(tmp_path_factory.mktemp("tts") / "exp"))


def train_cmd(conf, data, out, *extra) -> list[str]:
    """``speechtext train`` on ``data`` (train and dev) with the config file ``conf``, as a command line."""
    return [sys.executable, "-m", "speechtext.cli", "train", "--config", str(conf), "--train-dir", data,
            "--valid-dir", data, "--out-dir", str(out), *extra]


def kill_and_resume(conf, data, out, max_steps: int) -> int:
    """Start a training run, SIGKILL it as soon as it has written ``out/last.pt``, then finish it with
    ``--resume``; returns the step it was killed at (between 1 and ``max_steps - 1``)."""
    from speechtext.checkpoint import load_checkpoint

    proc = subprocess.Popen(train_cmd(conf, data, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = os.path.join(str(out), "last.pt")
    while proc.poll() is None and not os.path.exists(last):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(last)["step"]
    assert 1 <= killed_at < max_steps, "the run finished before it could be killed"
    resumed = subprocess.run(train_cmd(conf, data, out, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return killed_at


def torchrun(nproc: int, conf, data, out, *extra) -> subprocess.Popen:
    """``speechtext train`` under ``torchrun --standalone`` with ``nproc`` gloo processes, started."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone", f"--nproc_per_node={nproc}",
           *train_cmd(conf, data, out, *extra)[1:]]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def finish(proc: subprocess.Popen, timeout: float = 240) -> int:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("training hung (no exit within the timeout)") from None
    assert proc.returncode in (0, 75), err[-3000:]
    return proc.returncode
