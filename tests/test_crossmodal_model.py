"""A model with text encoder, shared space, fusion and command head, trained jointly with CTC."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

import speechtext
from speechtext.audio import load_audio
from speechtext.config import TranscribeOptions
from speechtext.crossmodal import CommandError
from speechtext.text_tokenizer import TextTokenizerError
from speechtext.train import train
from conftest import joint_config, wavs


@pytest.fixture(scope="module")
def joint_model(speech_dir, tmp_path_factory):
    return train(joint_config(max_steps=8, valid_interval=4), speech_dir, speech_dir,
                 str(tmp_path_factory.mktemp("joint") / "exp"))


def test_joint_training_logs_every_loss_and_saves_vocabularies(joint_model, speech_dir):
    for name in ("text_tokenizer.json", "intents.json", "model.safetensors", "transcript_intents.json"):
        assert os.path.exists(os.path.join(joint_model, name))
    mask = os.umask(0)
    os.umask(mask)  # readable as the umask allows, not mkdtemp's 0700 and safetensors' 0600
    assert os.stat(joint_model).st_mode & 0o777 == 0o777 & ~mask
    assert os.stat(os.path.join(joint_model, "model.safetensors")).st_mode & 0o777 == 0o666 & ~mask
    first = json.loads(open(os.path.join(os.path.dirname(joint_model), "metrics.jsonl")).readline())
    assert {"ctc", "contrastive", "command", "intent"} <= set(first)
    model = speechtext.load_model(joint_model)
    assert model.intents == sorted({line.split()[1] for line in open(os.path.join(speech_dir, "utt2intent"))})


def test_embeddings_are_unit_vectors_of_one_space(joint_model, speech_dir):
    model = speechtext.load_model(joint_model)
    audio = model.embed_audio(wavs(speech_dir)[:3] + ["/no/such.wav"])
    assert [a.error is None for a in audio] == [True, True, True, False] and "file not found" in audio[3].error
    vectors = np.stack([a.vector for a in audio[:3]])
    text = model.embed_text(["turn on the lights", "turn on the lights", "stop the music"])
    assert vectors.shape == (3, 16) and text.shape == (3, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4) and np.allclose(text[0], text[1])


def test_closed_set_and_zero_shot_commands(joint_model, speech_dir):
    model = speechtext.load_model(joint_model)
    closed = model.classify_command(wavs(speech_dir)[:2])
    assert all(r.command in model.intents and 0 < r.score <= 1 and r.runner_up in model.intents for r in closed)
    commands = ["open the garage door", "turn on the lights", "stop the music"]  # the first never trained on
    zero = model.classify_command(wavs(speech_dir)[:2], commands=commands)
    assert all(r.command in commands and r.runner_up in commands and r.runner_up != r.command for r in zero)
    assert all(r.score >= r.runner_up_score and -1 <= r.similarity <= 1 for r in zero)
    none = model.classify_command(wavs(speech_dir)[:1], commands=commands, threshold=1.01)
    assert none[0].command == "<none>"


def test_closed_set_intents_from_the_audio_the_transcript_or_both(joint_model, speech_dir):
    model = speechtext.load_model(joint_model)
    assert model.transcript_intents.intents == model.intents
    for path in wavs(speech_dir)[:3]:  # one input per call: a batch of one, as audio_outputs below
        heard = model.transcribe([path])[0].text
        audio, text, both = (model.classify_command([path], intent_from=source)[0]
                             for source in ("audio", "transcript", "both"))
        assert audio.transcript is None and text.transcript == both.transcript == heard
        from_text = model.transcript_intents.log_probs([heard])
        assert text.command == model.intents[int(from_text.argmax())]
        logits = model.audio_outputs([(0, load_audio(path))], "auto", ("intent_logits",))["intent_logits"]
        product = (logits.log_softmax(-1) + from_text).softmax(-1)[0]  # the two posteriors, renormalised
        assert both.command == model.intents[int(product.argmax())] and both.score == pytest.approx(float(product.max()), abs=1e-4)
        assert audio.command == model.intents[int(logits.argmax())]


def test_a_model_without_the_transcript_classifier_reads_intents_from_the_audio(joint_model, speech_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(joint_model, old)
    os.remove(old / "transcript_intents.json")
    model, files = speechtext.load_model(str(old)), wavs(speech_dir)[:3]
    assert model.transcript_intents is None
    assert [r.command for r in model.classify_command(files)] == [r.command for r in model.classify_command(files, intent_from="audio")]
    with pytest.raises(CommandError, match="no transcript intent classifier"):
        model.classify_command(files, intent_from="transcript")
    with pytest.raises(CommandError, match="intent_from must be one of audio, transcript, both"):
        model.classify_command(files, intent_from="text")
    with pytest.raises(ValueError, match="add --decoder joint"):  # the transcript's decoding options are checked
        speechtext.load_model(joint_model).classify_command(files, options=TranscribeOptions(lm="lm"))


def test_acoustic_score_is_the_ctc_likelihood_of_each_pair(joint_model, speech_dir):
    """Pairs index the right utterance and text: each score equals CTC on that pair alone."""
    model = speechtext.load_model(joint_model)
    frames, lengths = model.encode([(i, load_audio(w)) for i, w in enumerate(wavs(speech_dir)[:2])], "fp32")
    texts = ["stop the music", "turn on the lights", "x" * 400]  # the last cannot fit the frames
    spelled = [torch.tensor(model.tokenizer.encode(t)) for t in texts]
    targets = torch.nn.utils.rnn.pad_sequence(spelled, batch_first=True)
    target_lengths = torch.tensor([len(x) for x in spelled])
    with torch.inference_mode():
        log_probs = model.model.heads["ctc"](frames)
        pairs = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 2]])
        got = model.model.text_log_likelihood(log_probs, lengths, targets, target_lengths, pairs, chunk=3)
        for (a, t), value in zip(pairs.tolist(), got[:3]):
            alone = torch.nn.functional.ctc_loss(log_probs[a, : lengths[a]].unsqueeze(1), spelled[t].unsqueeze(0),
                                                 lengths[a:a + 1], target_lengths[t:t + 1], blank=model.tokenizer.blank_id)
            assert abs(float(value) + float(alone) * len(spelled[t])) < 1e-3  # ctc_loss's mean divides by length
    assert float(got[3]) == -1e4


def test_inputs_read_whole_are_refused_past_ten_minutes(joint_model, tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "long.wav", np.zeros(601 * 16000, dtype=np.int16), 16000, subtype="PCM_16")
    result = speechtext.load_model(joint_model).embed_audio([str(tmp_path / "long.wav")])[0]
    assert result.vector is None and "longer than the limit of 600 s" in result.error and "whole" in result.error


def test_acoustic_weight_changes_command_scores(joint_model, speech_dir):
    model = speechtext.load_model(joint_model)
    commands = ["open the garage door", "turn on the lights", "stop the music"]
    plain = model.classify_command(wavs(speech_dir)[:2], commands=commands, acoustic_weight=0)
    full = model.classify_command(wavs(speech_dir)[:2], commands=commands)
    assert [(r.command, r.score) for r in plain] != [(r.command, r.score) for r in full]


def test_search_texts_shortlists_then_rescores(joint_model, speech_dir):
    model = speechtext.load_model(joint_model)
    gallery = sorted(set(line.split(" ", 1)[1].strip() for line in open(os.path.join(speech_dir, "text"))))
    inputs = wavs(speech_dir)[:3] + ["/no/such.wav"]
    found = model.search_texts(inputs, gallery, top_k=3, shortlist=len(gallery))
    assert [r.error is None for r in found] == [True, True, True, False] and "file not found" in found[3].error
    for r in found[:3]:
        assert len(r.texts) == 3 and set(r.texts) <= set(gallery) and r.scores == sorted(r.scores, reverse=True)
    nearest = model.search_texts(inputs[:3], gallery, top_k=1, shortlist=1)  # the shortlist alone decides
    sims = np.stack([a.vector for a in model.embed_audio(inputs[:3])]) @ model.embed_text(gallery).T
    assert [r.texts[0] for r in nearest] == [gallery[i] for i in sims.argmax(1)]
    with pytest.raises(CommandError, match="top_k >= 1"):
        model.search_texts(inputs[:1], gallery, top_k=0)


def test_the_search_shortlist_keeps_a_text_the_recogniser_heard():
    """Half the shortlist comes from the CTC best path's spelling: a text the shared space ranks last
    is still scored in full when the recogniser heard it (frames past an input's length do not count)."""
    import torch

    from speechtext.crossmodal import shortlist_texts, spelling_overlap
    from speechtext.tokenizer import CharTokenizer

    texts = ["turn on the lights", "turn off the lights", "play jazz", "stop"]
    tok = CharTokenizer.build(texts)
    spelled = [torch.tensor(tok.encode(t)) for t in texts]
    targets = torch.nn.utils.rnn.pad_sequence(spelled, batch_first=True)
    path = [i for t in tok.encode("play jazz") for i in (t, t, tok.blank_id)]  # repeats and blanks
    tail = tok.encode("stop")
    log_probs = torch.full((1, len(path) + len(tail), tok.vocab_size), -9.0)
    log_probs[0, torch.arange(len(path) + len(tail)), torch.tensor(path + tail)] = 0.0
    heard = spelling_overlap(log_probs, torch.tensor([len(path)]), targets, torch.tensor([len(x) for x in spelled]),
                             tok.blank_id)
    # exactly its spelling: the "stop" frames past the input's length are not heard
    assert heard.shape == (1, 4) and int(heard.argmax()) == 2 and float(heard[0, 2]) == pytest.approx(1.0)
    space = torch.tensor([[0.9, 0.8, 0.1, -0.5]])  # the shared space ranks "play jazz" third of four
    assert shortlist_texts(space, heard, 2).tolist() == [[2, 0]]
    assert shortlist_texts(space, None, 2).tolist() == [[0, 1]] and shortlist_texts(space, heard, 1).tolist() == [[0]]


@pytest.mark.parametrize("commands, error, message", [
    ([], CommandError, "no commands given"),
    (["stop", "  "], CommandError, "command 2 is blank"),
    (["stop", "play", "Stop"], CommandError, "command 3 .* repeats command 1"),
    (["stop", "?!"], TextTokenizerError, "tokenises to nothing"),
])
def test_bad_command_lists_are_clear_errors(joint_model, speech_dir, commands, error, message):
    with pytest.raises(error, match=message):
        speechtext.load_model(joint_model).classify_command(wavs(speech_dir)[:1], commands=commands)


def test_transcribing_does_not_run_the_text_encoder(joint_model, speech_dir):
    model = speechtext.load_model(joint_model)
    calls = []
    model.model.text_encoder.register_forward_hook(lambda *args: calls.append(1))
    assert all(r.error is None for r in model.transcribe(wavs(speech_dir)[:3]))
    assert calls == []
    model.embed_text(["stop"])
    assert calls == [1]


def test_audio_only_model_refuses_command_calls(trained_model, speech_dir):
    with pytest.raises(CommandError, match="no text encoder"):
        speechtext.load_model(trained_model).classify_command(wavs(speech_dir)[:1], commands=["stop"])


def cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "speechtext.cli", *args], capture_output=True, text=True)


def test_command_cli_zero_shot_closed_set_and_attention_plot(joint_model, speech_dir, tmp_path):
    files = wavs(speech_dir)[:2]
    out = cli("command", joint_model, *files, "--commands", "turn on the lights", "stop the music", "open the door",
              "--format", "json", "--plot-attention", str(tmp_path / "att.png"))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["source"] for r in rows] == files and all(r["runner_up"] for r in rows)
    assert all((tmp_path / f"att-{os.path.splitext(os.path.basename(f))[0]}.png").stat().st_size > 1000 for f in files)
    closed = cli("command", joint_model, files[0])
    assert closed.returncode == 0 and closed.stdout.split("\t")[1] in speechtext.load_model(joint_model).intents
    heard = cli("command", joint_model, files[0], "--intent-from", "transcript", "--format", "json")
    row = json.loads(heard.stdout)
    assert heard.returncode == 0 and row["transcript"] == speechtext.load_model(joint_model).transcribe([files[0]])[0].text


def test_command_cli_bad_command_lists(joint_model, speech_dir, tmp_path):
    (tmp_path / "cmds.txt").write_text("stop the music\n\nplay\n")
    out = cli("command", joint_model, wavs(speech_dir)[0], "--commands-file", str(tmp_path / "cmds.txt"))
    assert out.returncode == 2 and "cmds.txt: command 2 is blank" in out.stderr
    (tmp_path / "cmds.txt").write_text("stop the music\nplay\nstop the music\n")
    out = cli("command", joint_model, wavs(speech_dir)[0], "--commands-file", str(tmp_path / "cmds.txt"))
    assert out.returncode == 2 and "repeats command 1" in out.stderr
    out = cli("command", joint_model, wavs(speech_dir)[0], "--commands")
    assert out.returncode == 2 and "no commands given" in out.stderr


def test_embed_cli_writes_unit_vectors_and_ids(joint_model, speech_dir, tmp_path):
    out = cli("embed", joint_model, "--audio", *wavs(speech_dir)[:3], "--text", "stop the music", "pause",
              "--out-dir", str(tmp_path / "emb"))
    assert out.returncode == 0, out.stderr
    audio, text = np.load(tmp_path / "emb" / "audio.npy"), np.load(tmp_path / "emb" / "text.npy")
    assert audio.shape == (3, 16) and text.shape == (2, 16) and np.allclose(np.linalg.norm(text, axis=1), 1, atol=1e-4)
    assert len((tmp_path / "emb" / "audio_ids.txt").read_text().splitlines()) == 3
    assert (tmp_path / "emb" / "texts.txt").read_text() == "stop the music\npause\n"
