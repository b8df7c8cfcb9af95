"""Every real-corpus recipe on a miniature copy of its corpus's on-disk layout: data preparation,
validation and a 5-step training pass from a tiny randomly initialised wav2vec2 checkpoint that the
test saves itself (as a hub id would be loaded: ``from_pretrained`` of a directory)."""
import json
import os

import pytest

import corpus_layouts
from conftest import copy_egs, run_egs
from speechtext.config import load_config
from speechtext.data import read_data_dir

# a few steps of each recipe's own conf, shrunk only in what a CPU test needs
FIVE_STEPS = ("--set train.max_steps=5 --set train.warmup_steps=1 --set train.valid_interval=5 "
              "--set train.log_interval=1 --set train.accum_grad=1 --set train.amp=none "
              "--set data.num_workers=0 --set data.max_batch_seconds=12")
TINY_MASKS = "--set model.encoder.overrides.mask_feature_length=8"  # the recipes' 64 channels exceed 32
SMALL_HEADS = ("--set model.fusion.dim=32 --set model.fusion.ff_dim=64 --set model.fusion.heads=2 "
               "--set model.embed_dim=16 --set model.text_encoder.vocab_size=100")


def run_corpus_recipe(name, tmp_path, corpus_dir, pretrained, *args):
    recipe = copy_egs(name, tmp_path)
    out = run_egs(recipe, "--corpus-dir", str(corpus_dir), "--pretrained", pretrained, "--stop-stage", "2", *args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return recipe


def trained_steps(exp) -> list[int]:
    return [e["step"] for e in map(json.loads, open(exp / "metrics.jsonl")) if "loss" in e]


@pytest.mark.recipe
@pytest.mark.slow
def test_librispeech_recipe(tmp_path, tiny_pretrained):
    corpus_layouts.make_librispeech(tmp_path / "LibriSpeech")
    recipe = run_corpus_recipe("librispeech", tmp_path, tmp_path / "LibriSpeech", tiny_pretrained,
                               "--speed-perturb", "0.9 1.0 1.1", "--train-opts", f"{FIVE_STEPS} {TINY_MASKS}")
    train = read_data_dir(str(recipe / "data" / "train_clean_100"))
    assert [u.utt_id for u in train][:2] == ["100-1000-0000", "100-1000-0001"] and train.utterances[0].text.isupper()
    perturbed = read_data_dir(str(recipe / "data" / "train_clean_100_sp_filtered"))
    assert len(perturbed.utterances) == 3 * len(train.utterances)
    assert any(u.utt_id.startswith("sp0.9-") for u in perturbed)
    assert trained_steps(recipe / "exp" / "train_100h") == [1, 2, 3, 4, 5]
    config = load_config(str(recipe / "exp" / "train_100h" / "final" / "config.yaml"))
    assert config.model.encoder.pretrained == tiny_pretrained and config.model.encoder.freeze_feature_encoder


@pytest.mark.recipe
@pytest.mark.slow
def test_speech_commands_recipe_12_classes(tmp_path, tiny_pretrained):
    corpus = tmp_path / "my corpora" / "gsc"  # a space in the path: data prep quotes it
    corpus_layouts.make_speech_commands(corpus)
    recipe = run_corpus_recipe("speech_commands", tmp_path, corpus, tiny_pretrained, "--task", "12",
                               "--train-opts", f"{FIVE_STEPS} {SMALL_HEADS}")
    intents = {u.intent for u in read_data_dir(str(recipe / "data" / "train"))}
    assert intents == {"yes", "no", "left", "_unknown_", "_silence_"}  # marvin is not a command word
    assert trained_steps(recipe / "exp" / "train_task12") == [1, 2, 3, 4, 5]


@pytest.mark.recipe
@pytest.mark.slow
def test_fluent_speech_commands_recipe_holds_out_phrasings(tmp_path, tiny_pretrained):
    corpus_layouts.make_fsc(tmp_path / "fsc")
    recipe = run_corpus_recipe("fluent_speech_commands", tmp_path, tmp_path / "fsc", tiny_pretrained,
                               "--holdout", "0.34", "--train-opts", f"{FIVE_STEPS} {SMALL_HEADS}")
    texts = lambda name: {u.text for u in read_data_dir(str(recipe / "data" / name))}
    assert texts("test_zeroshot") and not texts("test_zeroshot") & texts("train")
    assert {u.intent for u in read_data_dir(str(recipe / "data" / "test_zeroshot"))} <= \
           {u.intent for u in read_data_dir(str(recipe / "data" / "train"))}
    assert trained_steps(recipe / "exp" / "train") == [1, 2, 3, 4, 5]


@pytest.mark.recipe
@pytest.mark.slow
def test_ljspeech_recipe(tmp_path, tiny_pretrained):
    corpus_layouts.make_ljspeech(tmp_path / "LJSpeech-1.1")
    recipe = run_corpus_recipe("ljspeech", tmp_path, tmp_path / "LJSpeech-1.1", tiny_pretrained, "--num-dev", "2",
                               "--num-test", "2", "--train-opts", f"{FIVE_STEPS} {SMALL_HEADS} {TINY_MASKS}")
    test = read_data_dir(str(recipe / "data" / "test"))
    assert [u.utt_id for u in test] == ["LJ001-0011", "LJ001-0012"]
    assert test.utterances[0].text.endswith("he said: two times")  # the normalised column
    assert trained_steps(recipe / "exp" / "train") == [1, 2, 3, 4, 5]


@pytest.mark.recipe
@pytest.mark.slow
def test_vctk_recipe_holds_out_yourtts_speakers(tmp_path, tiny_pretrained):
    corpus_layouts.make_vctk(tmp_path / "VCTK-Corpus-0.92")
    recipe = run_corpus_recipe("vctk", tmp_path, tmp_path / "VCTK-Corpus-0.92", tiny_pretrained,
                               "--train-opts", f"{FIVE_STEPS} {SMALL_HEADS} {TINY_MASKS}")
    speakers = lambda name: {u.speaker for u in read_data_dir(str(recipe / "data" / name))}
    assert speakers("test") == {"p225"} and speakers("train") == {"p226", "p227"}  # p315: no transcripts
    assert all(u.audio.source.endswith("_mic1.flac") for u in read_data_dir(str(recipe / "data" / "train")))
    assert trained_steps(recipe / "exp" / "train") == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("name", ["librispeech", "speech_commands", "fluent_speech_commands", "ljspeech", "vctk"])
def test_recipe_without_its_corpus_says_where_to_get_it(name, tmp_path):
    """A missing corpus stops stage 0 with what was expected where, the download address, and the log."""
    recipe = copy_egs(name, tmp_path)
    out = run_egs(recipe, "--corpus-dir", str(tmp_path / "nothing_here"), "--stop-stage", "0")
    assert out.returncode != 0
    assert "expected" in out.stderr and "Download the corpus from http" in out.stderr, out.stderr[-2000:]
    assert "[stage 0] FAILED" in out.stderr and "exp/logs/stage0.log" in out.stderr
    assert "Download the corpus" in (recipe / "exp" / "logs" / "stage0.log").read_text()


def test_every_run_sh_is_short_and_leaves_logic_to_recipes():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in os.listdir(os.path.join(root, "egs")):
        lines = open(os.path.join(root, "egs", name, "run.sh")).read().splitlines()
        assert len(lines) <= 80, name
        assert any(line.startswith(("recipes/asr.sh", "recipes/synthesis_recipe.sh")) for line in lines), name


def test_stage_times_are_those_of_the_latest_run_of_each_stage(tmp_path):
    """recipes/lib.sh: a stage's commands add up in exp/<tag>.timing; running a stage again replaces
    its earlier times (they used to add to them, so a re-decode doubled stage 4 in RESULTS.md)."""
    import subprocess
    lib = os.path.join(os.path.dirname(__file__), "..", "recipes", "lib.sh")
    script = f'exp=exp/train; stage=0; stop_stage=9; . "{lib}"; timed 2 true; timed 4 true; timed 4 true'
    for _ in range(2):
        subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True)
    subprocess.run(["bash", "-c", f'exp=exp/train; stage=4; stop_stage=4; . "{lib}"; timed 4 true'],
                   cwd=tmp_path, check=True)
    stages = [line.split()[0] for line in (tmp_path / "exp" / "train.timing").read_text().splitlines()]
    assert sorted(stages) == ["stage2", "stage4"]
