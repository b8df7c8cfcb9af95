"""The whole synth_commands recipe at its smallest size, in a copy of the recipe directory."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import copy_egs, run_egs

def run_recipe(tmp_path, *args):
    """Copy egs/synth_commands (its recipes/ link pointing back here) and run run.sh there."""
    if not all(shutil.which(tool) for tool in ("espeak-ng", "flite", "festival")):
        pytest.skip("espeak-ng, flite and festival are needed (tools/setup.sh installs them)")
    recipe = copy_egs("synth_commands", tmp_path)
    return recipe, run_egs(recipe, *args, timeout=1800)


@pytest.mark.recipe
@pytest.mark.slow
def test_synth_commands_smoke(tmp_path):
    recipe, out = run_recipe(tmp_path, "--size", "smoke")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = (recipe / "exp" / "RESULTS_smoke.md").read_text()
    assert "| test |" in results and "| test_flite |" in results and "| test_real_digits |" in results
    assert "precision fp32" in results or "precision bf16" in results
    for name in ("train", "dev", "test", "test_flite", "test_zeroshot", "test_real_digits"):
        assert (recipe / "data" / name / "utt2intent").exists()
    # Training speech from three synthesis methods; flite's voices never among them.
    speakers = {line.split()[0] for line in open(recipe / "data" / "train" / "spk2utt")}
    assert "festival_kdl" in speakers and "piper_joe" in speakers and any(s.startswith("en-") for s in speakers)
    assert not {"kal", "kal16", "awb", "rms", "slt"} & speakers
    assert (recipe / "exp" / "train_smoke" / "loss_curve.png").exists()
    # Stage 8: the ONNX export decoded beside PyTorch, and the packed model.
    assert "## exp/train_smoke/onnx" in results and "| test | joint | onnx int8 |" in results
    assert (recipe / "exp" / "train_smoke" / "onnx" / "model.int8.decoder.onnx").exists()
    assert (recipe / "exp" / "train_smoke" / "model.tar.gz").stat().st_size > 10000
    # Stages are idempotent: a second run reuses the corpus and the trained model.
    _, again = run_recipe(tmp_path, "--size", "smoke", "--stop-stage", "2")
    assert again.returncode == 0 and "data/ is prepared" in again.stdout and "final exists" in again.stdout


@pytest.mark.recipe
@pytest.mark.slow
def test_synth_commands_joint_smoke(tmp_path):
    """The cross-modal stages (intents, zero-shot phrasings never trained on, retrieval, embedding plot)
    and the synthesis stages (head training, synthesis of held-out voices, scoring, pictures)."""
    recipe, out = run_recipe(tmp_path, "--size", "smoke-joint")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = (recipe / "exp" / "RESULTS_smoke.md").read_text()
    for metric in ("test/intent_acc", "test/intent_acc_audio", "test/intent_acc_transcript",
                   "test_zeroshot/zeroshot_acc@10", "test_zeroshot/zeroshot_acc@10_no_acoustic", "test/a2t_R@1", "test/space_a2t_R@1", "test_flite/space_t2a_R@10"):
        assert f"| {metric} |" in results
    assert (recipe / "exp" / "train_smoke_joint" / "embedding_space.png").stat().st_size > 5000
    train_texts = {line.split(" ", 1)[1] for line in open(recipe / "data" / "train" / "text")}
    zeroshot_texts = {line.split(" ", 1)[1] for line in open(recipe / "data" / "test_zeroshot" / "text")}
    assert zeroshot_texts and not (train_texts & zeroshot_texts)
    tts = recipe / "exp" / "tts_smoke"
    assert "## exp/tts_smoke" in results and "| MCD-DTW against the real utterance, dB |" in results
    assert "Griffin-Lim of the real mel (vocoder ceiling)" in results
    for ceiling in ("real", "griffin-lim"):
        assert sorted(p.name for p in (tts / f"ceiling_test_{ceiling}").glob("*.wav")) == \
            sorted(p.name for p in (tts / "synth_test_same").glob("*.wav"))
    for kind in ("same", "unrelated"):
        wavs = sorted((tts / f"synth_test_{kind}").glob("*.wav"))
        pairs = dict(line.split() for line in open(tts / f"synth_test_{kind}" / "pairs"))
        assert wavs and all(pairs[w.stem] != w.stem for w in wavs)  # never its own reference
    average = tts / "synth_test_average"  # the no-reference baseline: every target in the training voices' average
    targets = {kind: dict(line.split() for line in open(tts / f"synth_test_{kind}" / "pairs")) for kind in ("same", "average")}
    assert sorted(targets["average"]) == sorted(targets["same"]) and set(targets["average"].values()) == {"average-voice"}
    assert {p.stem for p in average.glob("*.wav")} <= set(targets["average"]) and any(average.glob("*.wav"))
    assert "synthesis in the average voice (no reference)" in results
    assert len(list((tts / "plots").glob("*.png"))) == 1
