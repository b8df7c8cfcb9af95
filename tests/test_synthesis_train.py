"""Training the synthesis head on a trained joint model: durations from its own CTC alignment, the
backbone frozen, a model directory with every head that loads by itself."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from speechtext.checkpoint import CheckpointError
from speechtext.config import ConfigError, SynthesisConfig, save_config
from speechtext.data import read_data_dir
from speechtext.inference import load_model
from speechtext.synthesis_data import SynthesisBatchLoader, alignment_durations
from speechtext.train import train

from conftest import finish, kill_and_resume, synthesis_config, tiny_config, torchrun, train_cmd


def test_synthesis_batches_pair_each_target_with_another_utterance_of_its_voice(joint_dir, speech_dir):
    model = load_model(joint_dir)
    data = read_data_dir(speech_dir)
    durations = alignment_durations(model, data, SynthesisConfig().mel)
    assert len(durations) == len(data)
    speakers = sorted({u.speaker for u in data})
    loader = SynthesisBatchLoader(data, durations, model.tokenizer, model.text_tokenizer, SynthesisConfig().mel,
                                  tiny_config().data, seed=1, train=True, speakers=speakers)
    batch = loader[(0, 0)]
    assert (batch["durations"].sum(1) == batch["mel_lengths"]).all()
    assert batch["mel"].shape[:2] == (len(batch["utt_ids"]), int(batch["mel_lengths"].max()))
    by_id = {u.utt_id: u for u in data}
    for utt, ref_len, spk in zip(batch["utt_ids"], batch["ref_lengths"], batch["speaker_ids"]):
        assert speakers[int(spk)] == by_id[utt].speaker
    assert loader[(0, 0)]["ref_waveforms"].equal(batch["ref_waveforms"])  # the same draw when rebuilt (resume)
    assert batch["pitch"].shape == batch["voiced"].shape == batch["durations"].shape
    assert batch["voiced"].any() and batch["ref_pitch"].shape == (len(batch["utt_ids"]), 3)
    voiced_hz = 100 * batch["pitch"][batch["voiced"]].exp()
    assert ((voiced_hz > 60) & (voiced_hz < 500)).all()
    f0 = {}  # the F0 of every utterance, kept from the alignment pass: the same batch
    alignment_durations(model, data, SynthesisConfig().mel, f0=f0)
    kept = SynthesisBatchLoader(data, durations, model.tokenizer, model.text_tokenizer, SynthesisConfig().mel,
                                tiny_config().data, seed=1, train=True, speakers=speakers, f0=f0)[(0, 0)]
    for key in ("f0", "pitch", "voiced", "ref_pitch"):
        assert torch.allclose(kept[key].float(), batch[key].float(), atol=1e-4), key


def test_reference_frames_kept_from_the_alignment_are_the_encoders_and_train_the_same(joint_dir, speech_dir, tmp_path):
    """A frozen encoder's frames of each utterance, kept from the alignment pass, stand in for encoding
    the references at every step: the frames the step would compute, and the same training run."""
    model = load_model(joint_dir)
    data = read_data_dir(speech_dir)
    frames = {}
    durations = alignment_durations(model, data, SynthesisConfig().mel, frames)
    assert frames.keys() == durations.keys()
    loader = SynthesisBatchLoader(data, durations, model.tokenizer, model.text_tokenizer, SynthesisConfig().mel,
                                  tiny_config().data, seed=1, train=True, speakers=sorted({u.speaker for u in data}),
                                  ref_frames=frames)
    batch = loader[(0, 0)]
    with torch.inference_mode():
        live, lengths = model.model.encode(batch["ref_waveforms"], batch["ref_lengths"])
    assert batch["ref_frame_lengths"].equal(lengths)
    for row, n in enumerate(lengths.tolist()):
        assert torch.allclose(batch["ref_frames"][row, :n], live[row, :n], atol=1e-4)
    cfg = synthesis_config(joint_dir, max_steps=4, valid_interval=4)
    cached = train(cfg, speech_dir, speech_dir, str(tmp_path / "cached"))
    cfg.data.reference_cache_mb = 0  # encode the references at every step
    live_dir = train(cfg, speech_dir, speech_dir, str(tmp_path / "live"))
    a = [json.loads(line) for line in open(os.path.join(cached, "..", "metrics.jsonl"))]
    b = [json.loads(line) for line in open(os.path.join(live_dir, "..", "metrics.jsonl"))]
    assert len(a) == len(b) and all(x.keys() == y.keys() for x, y in zip(a, b))
    for x, y in zip(a, b):
        for key in ("loss", "mel", "dev_postnet"):
            if key in x:
                assert x[key] == pytest.approx(y[key], rel=1e-3), (key, x, y)
    assert any("loss" in x for x in a) and any("dev_postnet" in x for x in a)
    assert "encoding them at every step" not in open(tmp_path / "cached" / "train.log").read()
    assert "encoding them at every step" in open(tmp_path / "live" / "train.log").read()


def test_a_trainable_encoder_encodes_the_references_at_every_step(joint_dir, speech_dir, tmp_path):
    """Frames kept from the alignment pass would carry no gradient: with the audio encoder trainable the
    references go through it at every step, and it learns."""
    cfg = synthesis_config(joint_dir, max_steps=2, valid_interval=2, trainable=["heads.synthesis", "audio_encoder"])
    out = train(cfg, speech_dir, speech_dir, str(tmp_path / "tts"))
    before, after = load_file(os.path.join(joint_dir, "model.safetensors")), load_file(os.path.join(out, "model.safetensors"))
    encoder = [k for k in before if k.startswith("audio_encoder.")]
    assert encoder and any(not torch.equal(before[k], after[k]) for k in encoder)


def test_a_model_saved_before_the_pitch_predictor_loads_without_it(joint_dir, speech_dir, tmp_path):
    """A model directory's config lists every field it had: one without ``synthesis.pitch`` (or
    ``speaker_film``) predates it and was trained without it, whatever the default is now."""
    import yaml

    cfg = synthesis_config(joint_dir, max_steps=8, valid_interval=8)
    cfg.model.synthesis.pitch = cfg.model.synthesis.speaker_film = False
    out = train(cfg, speech_dir, speech_dir, str(tmp_path / "tts"))
    path = os.path.join(out, "config.yaml")
    saved = yaml.safe_load(open(path))
    del saved["model"]["synthesis"]["pitch"], saved["model"]["synthesis"]["speaker_film"]
    yaml.safe_dump(saved, open(path, "w"))
    model = load_model(out)
    assert model.config.model.synthesis.pitch is False and model.config.model.synthesis.speaker_film is False
    [result] = model.synthesize(["stop"], reference=read_data_dir(speech_dir).utterances[0].audio.source)
    assert result.error is None and result.pitch is None


def test_synthesis_training_keeps_the_backbone_and_adds_the_head(joint_dir, speech_dir, tmp_path):
    out = train(synthesis_config(joint_dir), speech_dir, speech_dir, str(tmp_path / "tts"))
    before, after = load_file(os.path.join(joint_dir, "model.safetensors")), load_file(os.path.join(out, "model.safetensors"))
    assert set(before) < set(after) and all(k.startswith("heads.synthesis.") for k in set(after) - set(before))
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen: recogniser, text encoder, fusion
    pipeline = load_model(out)
    assert pipeline.config.model.heads == ["ctc", "command", "synthesis"]
    assert pipeline.config.model.synthesis.num_speakers == 4
    same = lambda name: open(os.path.join(joint_dir, name)).read() == open(os.path.join(out, name)).read()
    assert same("intents.json") and same("transcript_intents.json")  # the command model's, kept as they were
    rows = [json.loads(line) for line in open(tmp_path / "tts" / "metrics.jsonl")]
    dev = [r for r in rows if "dev_postnet" in r]
    assert dev and all(r["dev_postnet"] > 0 for r in dev) and (tmp_path / "tts" / "loss_curve.png").exists()
    assert any("mel" in r for r in rows if "dev_postnet" not in r)


def test_init_from_and_trainable_refuse_what_does_not_fit(joint_dir, speech_dir, tmp_path):
    with pytest.raises(ConfigError, match="matches no parameter"):
        train(synthesis_config(joint_dir, trainable=["heads.synth"]), speech_dir, speech_dir, str(tmp_path / "a"))
    other = train(tiny_config(max_steps=1), speech_dir, speech_dir, str(tmp_path / "ctc"))  # no text encoder
    cfg = synthesis_config(other)
    with pytest.raises(ConfigError, match="synthesis head needs model.text_encoder"):
        train(cfg, speech_dir, speech_dir, str(tmp_path / "b"))
    with pytest.raises(CheckpointError, match="not a speechtext model directory"):
        train(synthesis_config(str(tmp_path)), speech_dir, speech_dir, str(tmp_path / "c"))


def test_a_killed_synthesis_run_resumes_exactly(joint_dir, speech_dir, tmp_path):
    """Durations come from the model's CTC head: a resumed run must align with the trained weights, not
    with a freshly built model, and then reach the uninterrupted run's weights."""
    import subprocess

    from speechtext.config import save_config

    conf = tmp_path / "tts.yaml"
    save_config(synthesis_config(joint_dir, max_steps=12, valid_interval=6), str(conf))
    assert subprocess.run(train_cmd(conf, speech_dir, tmp_path / "a"), capture_output=True).returncode == 0
    kill_and_resume(conf, speech_dir, tmp_path / "b", max_steps=12)
    a = load_file(str(tmp_path / "a" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_synthesis_dev_loss_under_two_processes_covers_the_whole_dev_set(joint_dir, speech_dir, tmp_path):
    # lr 0: both runs validate the same weights, so their dev losses differ only in what they average over
    conf = tmp_path / "tts.yaml"
    save_config(synthesis_config(joint_dir, max_steps=2, valid_interval=2, lr=0.0), str(conf))
    assert finish(subprocess.Popen(train_cmd(conf, speech_dir, tmp_path / "one"), stderr=subprocess.PIPE, text=True)) == 0
    assert finish(torchrun(2, conf, speech_dir, tmp_path / "two")) == 0
    dev = {n: [e for e in map(json.loads, open(tmp_path / n / "metrics.jsonl")) if "dev_postnet" in e]
           for n in ("one", "two")}
    assert len(dev["one"]) == len(dev["two"]) == 1
    for key in ("dev_loss", "dev_mel", "dev_postnet", "dev_duration"):
        # padding differs with the split (measured 5e-4); rank 0's share alone was 8e-3 off
        assert dev["two"][0][key] == pytest.approx(dev["one"][0][key], rel=2e-3), key
