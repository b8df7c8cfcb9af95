"""ONNX export (``speechtext export``) and the ONNX Runtime backend: logits match PyTorch, every decoder
gives the same transcripts, metadata carries what is needed, dynamic axes work, bad inputs are clear."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import speechtext  # noqa: E402
from speechtext.audio import load_audio  # noqa: E402
from speechtext.checkpoint import CheckpointError, build_model, save_model_dir  # noqa: E402
from speechtext.config import TranscribeOptions  # noqa: E402
from speechtext.export import ExportError, export_onnx  # noqa: E402
from speechtext.tokenizer import CharTokenizer  # noqa: E402
from conftest import espeak, tiny_config, wavs  # noqa: E402


@pytest.fixture(scope="module")
def twenty_files(speech_dir, tmp_path_factory):
    """The 16 utterances of ``speech_dir`` and 4 more of other lengths and voices: 20 files."""
    root = tmp_path_factory.mktemp("more")
    extra = [espeak(text, str(root / f"x{i}.wav"), voice) for i, (text, voice) in enumerate(
        [("go", "en-us"), ("set an alarm for seven thirty in the morning please", "en-gb"),
         ("one two", "en-us+f2"), ("what is the weather like", "en-gb-scotland")])]
    return wavs(speech_dir) + extra


@pytest.fixture(scope="module")
def exported(hybrid_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    fp32 = export_onnx(hybrid_model, str(out / "model.onnx"))
    int8 = export_onnx(hybrid_model, str(out / "model.int8.onnx"), "int8")
    return {"fp32": fp32, "int8": int8}


def _log_probs(pipeline, files):
    loaded = [(i, load_audio(f)) for i, f in enumerate(files)]
    log_probs, lengths, _ = pipeline.recognition_outputs(loaded, "fp32")
    return [log_probs[i, :n].numpy() for i, n in enumerate(lengths.tolist())]


def test_onnx_logits_match_pytorch_on_20_files(hybrid_model, exported, twenty_files):
    torch_model = speechtext.load_model(hybrid_model)
    onnx_model = speechtext.load_model(exported["fp32"][0])
    ours, theirs = _log_probs(torch_model, twenty_files), _log_probs(onnx_model, twenty_files)
    assert len(ours) == 20 and all(a.shape == b.shape for a, b in zip(ours, theirs))
    assert max(np.abs(a - b).max() for a, b in zip(ours, theirs)) < 1e-3
    int8 = _log_probs(speechtext.load_model(exported["int8"][0]), twenty_files)
    error = max(np.abs(a - b).max() for a, b in zip(ours, int8))
    assert 0 < error < 1.0  # quantized: close, but not the same numbers


def test_every_decoder_and_timestamps_agree_with_pytorch(hybrid_model, exported, twenty_files):
    torch_model, onnx_model = speechtext.load_model(hybrid_model), speechtext.load_model(exported["fp32"][0])
    files = twenty_files[:6] + ["/no/such.wav"]
    for decoder in ("greedy", "ctc", "attention", "joint"):
        ours = torch_model.transcribe(files, precision="fp32", decoder=decoder, beam_size=3)
        theirs = onnx_model.transcribe(files, decoder=decoder, beam_size=3)
        assert [r.text for r in ours] == [r.text for r in theirs], decoder
        assert theirs[-1].error and "/no/such.wav" in theirs[-1].error and theirs[-1].text is None
    ours = torch_model.transcribe(files[:3], precision="fp32", timestamps="word")
    theirs = onnx_model.transcribe(files[:3], timestamps="word")
    assert [[(w.word, w.start, w.end) for w in r.words] for r in ours] == \
        [[(w.word, w.start, w.end) for w in r.words] for r in theirs]


def test_metadata_and_files(exported, hybrid_model):
    import onnx

    paths = exported["fp32"]
    assert [os.path.basename(p) for p in paths] == ["model.onnx", "model.decoder.onnx"]
    meta = {p.key: p.value for p in onnx.load(paths[0]).metadata_props}
    tokens = json.loads(meta["tokenizer"])["tokens"]
    assert tokens == json.load(open(os.path.join(hybrid_model, "tokenizer.json")))["tokens"]
    assert meta["sample_rate"] == "16000" and float(meta["frame_hop"]) == 0.02
    assert meta["normalize_waveform"] == "1" and meta["heads"] == "ctc,attention" and meta["quantization"] == "none"
    assert meta["speechtext_onnx_format"] == "1" and json.loads(meta["graphs"]) == {"decoder": "model.decoder.onnx"}
    int8 = {p.key: p.value for p in onnx.load(exported["int8"][0]).metadata_props}
    assert int8["quantization"] == "int8"
    # int8 weights: the quantized graph is several times smaller than the fp32 one.
    assert os.path.getsize(exported["int8"][0]) < 0.6 * os.path.getsize(paths[0])


def test_dynamic_batch_and_time_axes(exported):
    import onnxruntime as ort

    session = ort.InferenceSession(exported["fp32"][0], providers=["CPUExecutionProvider"])
    for batch, samples in ((1, 4000), (3, 51234), (5, 16000)):
        waves = np.random.default_rng(batch).standard_normal((batch, samples)).astype(np.float32)
        lengths = np.array([samples] + [samples // 2] * (batch - 1), dtype=np.int64)
        log_probs, frame_lengths, cross = session.run(None, {"waveforms": waves, "lengths": lengths})
        assert log_probs.shape[:2] == (batch, frame_lengths.max()) and cross.shape[2] == batch
        assert np.allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-4)


def test_group_norm_front_end_runs_one_utterance_at_a_time(twenty_files, tmp_path):
    """wav2vec2-base's GroupNorm front end: padding would change frames, so the backend feeds such
    a graph one utterance at a time and still matches PyTorch in a mixed-length batch."""
    cfg = tiny_config()
    cfg.model.encoder.overrides["feat_extract_norm"] = "group"
    cfg.model.encoder.overrides["do_stable_layer_norm"] = False
    tokenizer = CharTokenizer.build(["turn on the lights"])
    torch.manual_seed(0)
    save_model_dir(build_model(cfg, tokenizer), tokenizer, cfg, str(tmp_path / "gn"))
    path = export_onnx(str(tmp_path / "gn"), str(tmp_path / "gn.onnx"))[0]
    files = twenty_files[:5]
    ours = _log_probs(speechtext.load_model(str(tmp_path / "gn")), files)
    theirs = _log_probs(speechtext.load_model(path), files)
    assert max(np.abs(a - b).max() for a, b in zip(ours, theirs)) < 1e-3


def test_mel_front_end_exports_and_matches_pytorch(twenty_files, tmp_path):
    """The log-mel front end (a fixed DFT convolution, per-utterance mean over each row's own frames):
    fp32 and int8 exports of a mixed-length batch match PyTorch."""
    cfg = tiny_config()
    cfg.model.encoder.frontend, cfg.model.encoder.mel_max_hz = "mel", 4000.0
    tokenizer = CharTokenizer.build(["turn on the lights"])
    torch.manual_seed(0)
    save_model_dir(build_model(cfg, tokenizer), tokenizer, cfg, str(tmp_path / "mel"))
    files = twenty_files[:6]
    ours = _log_probs(speechtext.load_model(str(tmp_path / "mel")), files)
    for quantize, tolerance in ((None, 1e-3), ("int8", 0.5)):
        path = export_onnx(str(tmp_path / "mel"), str(tmp_path / f"mel.{quantize}.onnx"), quantize)[0]
        theirs = _log_probs(speechtext.load_model(path), files)
        assert max(np.abs(a - b).max() for a, b in zip(ours, theirs)) < tolerance


def test_cli_export_and_transcribe_with_onnx(hybrid_model, twenty_files, tmp_path):
    env = {**os.environ, "SPEECHTEXT_CACHE": str(tmp_path / "cache")}
    cli = [sys.executable, "-m", "speechtext.cli"]
    out = subprocess.run(cli + ["export", hybrid_model, "--quantize", "int8", "-o", str(tmp_path / "m.onnx")],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "m.onnx" in out.stdout and "m.decoder.onnx" in out.stdout
    files = twenty_files[:3]
    by_file = subprocess.run(cli + ["transcribe", str(tmp_path / "m.onnx"), *files, "--decoder", "joint"],
                             capture_output=True, text=True, env=env)
    assert by_file.returncode == 0, by_file.stderr
    assert [line.split("\t")[0] for line in by_file.stdout.splitlines()] == files
    backend = subprocess.run(cli + ["transcribe", hybrid_model, *files, "--backend", "onnxruntime", "--format", "kaldi"],
                             capture_output=True, text=True, env=env)
    reference = subprocess.run(cli + ["transcribe", hybrid_model, *files, "--precision", "fp32", "--format", "kaldi"],
                               capture_output=True, text=True, env=env)
    assert backend.returncode == 0, backend.stderr
    assert backend.stdout == reference.stdout
    assert len(os.listdir(tmp_path / "cache" / "onnx")) == 1  # exported once, then reused


def test_bad_exports_and_loads_are_clear_errors(hybrid_model, exported, twenty_files, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(hybrid_model, broken)
    os.remove(broken / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors missing"):
        export_onnx(str(broken), str(tmp_path / "x.onnx"))
    old = tmp_path / "old"
    shutil.copytree(hybrid_model, old)
    meta = json.load(open(old / "speechtext.json"))
    json.dump({**meta, "format_version": 99}, open(old / "speechtext.json", "w"))
    with pytest.raises(CheckpointError, match="model format 99"):
        export_onnx(str(old), str(tmp_path / "x.onnx"))
    with pytest.raises(ExportError, match="int8"):
        export_onnx(hybrid_model, str(tmp_path / "x.onnx"), "int4")
    assert not (tmp_path / "x.onnx").exists()
    torn = tmp_path / "torn.onnx"
    torn.write_bytes(open(exported["fp32"][0], "rb").read()[:5000])
    with pytest.raises(ExportError, match="torn.onnx: cannot load"):
        speechtext.load_model(str(torn))
    alone = tmp_path / "alone.onnx"  # the recogniser without its decoder graph beside it
    shutil.copy(exported["fp32"][0], alone)
    model = speechtext.load_model(str(alone))
    assert model.transcribe([twenty_files[0]], decoder="greedy")[0].error is None
    with pytest.raises(ExportError, match="decoder graph .* is missing"):
        model.transcribe([twenty_files[0]], decoder="joint")
    with pytest.raises(ValueError, match="no text encoder"):
        model.classify_command([twenty_files[0]], commands=["stop"])
    with pytest.raises(ExportError, match="synthesize needs the model directory"):
        model.synthesize(["hello"], reference=twenty_files[0])
    with pytest.raises(ValueError, match="not bf16"):
        model.transcribe([twenty_files[0]], precision="bf16")



def test_command_head_through_onnx_matches_pytorch(joint_dir, twenty_files, tmp_path):
    """Closed-set intents, zero-shot commands (fusion match + cosine + CTC spelling), the shared space
    and text search: the text and command graphs give what the PyTorch model gives."""
    paths = export_onnx(joint_dir, str(tmp_path / "joint.onnx"))
    assert sorted(os.path.basename(p) for p in paths) == ["joint.command.onnx", "joint.onnx", "joint.text.onnx"]
    ours, theirs = speechtext.load_model(joint_dir), speechtext.load_model(paths[0])
    assert theirs.transcript_intents.to_json() == ours.transcript_intents.to_json()
    files = twenty_files[:5] + ["/no/such.wav"]
    commands = ["turn on the lights", "stop the music", "play the next song", "call five one two"]
    for kwargs in ({}, {"commands": commands}, {"commands": commands, "acoustic_weight": 0.0}):
        a = ours.classify_command(files, options=TranscribeOptions(precision="fp32"), **kwargs)
        b = theirs.classify_command(files, **kwargs)
        assert [r.command for r in a] == [r.command for r in b]
        assert all(abs(x.score - y.score) < 1e-3 for x, y in zip(a[:-1], b[:-1]))
        assert b[-1].error and b[-1].command is None
    assert np.abs(ours.embed_text(commands) - theirs.embed_text(commands)).max() < 1e-4
    a = ours.embed_audio(files[:3], options=TranscribeOptions(precision="fp32"))
    b = theirs.embed_audio(files[:3])
    assert max(np.abs(x.vector - y.vector).max() for x, y in zip(a, b)) < 1e-4
    a = ours.search_texts(files[:3], commands, top_k=2, options=TranscribeOptions(precision="fp32"))
    assert [r.texts for r in a] == [r.texts for r in theirs.search_texts(files[:3], commands, top_k=2)]
    cli = subprocess.run([sys.executable, "-m", "speechtext.cli", "command", paths[0], *files[:2], "--commands",
                          *commands], capture_output=True, text=True)
    assert cli.returncode == 0 and len(cli.stdout.splitlines()) == 2, cli.stderr
