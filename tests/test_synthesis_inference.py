"""`model.synthesize` on a trained synthesis head: results and conditioning, speed, and bad texts or
references reported on their own items while the rest are synthesised."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speechtext.data import read_data_dir
from speechtext.inference import load_model
from speechtext.synthesis import AverageVoice, SynthesisError

from conftest import tone


@pytest.fixture(scope="module")
def model(synthesis_dir):
    return load_model(synthesis_dir)


@pytest.fixture(scope="module")
def reference(speech_dir):
    return read_data_dir(speech_dir).utterances[0].audio.source


def test_synthesis_returns_audio_and_its_conditioning(model, reference):
    texts = ["turn on the lights", "stop the music"]
    results = model.synthesize(texts, reference=reference)
    assert [r.text for r in results] == texts and not any(r.error for r in results)
    for r in results:
        assert r.waveform.dtype == np.float32 and r.sample_rate == 16000 and r.hop_length == 160
        assert r.mel.shape == (sum(r.durations), 80) and len(r.waveform) == (len(r.mel) - 1) * 160
        assert r.tokens[0] == r.tokens[-1] == "|" and len(r.tokens) == len(r.durations) == len(r.text) + 2
        assert abs(float(np.linalg.norm(r.speaker)) - 1.0) < 1e-2 and np.isfinite(r.waveform).all()  # bf16 where native
    fast = model.synthesize(texts, reference=reference, speed=2.0)
    for slow, quick in zip(results, fast):
        assert sum(quick.durations) <= 0.5 * sum(slow.durations) + len(slow.durations)


def test_pitch_is_predicted_per_token_and_shifts_by_semitones(model, reference):
    [plain] = model.synthesize(["turn on the lights"], reference=reference)
    [higher] = model.synthesize(["turn on the lights"], reference=reference, pitch_shift=12.0)
    assert len(plain.pitch) == len(plain.tokens) and any(hz > 0 for hz in plain.pitch)
    assert all(hz == 0 or 40 < hz < 1000 for hz in plain.pitch)
    voiced = [(a, b) for a, b in zip(plain.pitch, higher.pitch) if a > 0]
    assert voiced and all(abs(b / a - 2.0) < 0.01 for a, b in voiced)  # an octave up
    assert not np.allclose(plain.mel, higher.mel)  # and the decoder hears it


def test_bad_texts_get_their_own_errors(model, reference):
    texts = [("ok", "play the next song"), ("empty", "  "), ("odd", "turn @ on ~"), ("long", "stop " * 80)]
    results = {r.id: r for r in model.synthesize(texts, reference=reference)}
    assert results["ok"].waveform is not None and results["ok"].error is None
    assert "empty text" in results["empty"].error
    assert "cannot speak: @ ~" in results["odd"].error and results["odd"].waveform is None
    assert "split it" in results["long"].error and results["long"].id in results["long"].error


def test_bad_references_fail_their_texts_only(model, reference, tmp_path):
    silent, short = str(tmp_path / "silent.wav"), str(tmp_path / "short.wav")
    sf.write(silent, np.zeros(32000, np.float32), 16000)
    sf.write(short, tone(0.3), 16000)
    refs = [reference, str(tmp_path / "missing.wav"), silent, short]
    results = model.synthesize(["turn left"] * 4, reference=refs)
    assert results[0].error is None and results[0].waveform is not None
    assert "missing.wav" in results[1].error
    assert "silent" in results[2].error and "0.30 s long; give at least 1 s" in results[3].error
    with pytest.raises(ValueError, match="2 references for 4 texts"):
        model.synthesize(["a"] * 4, reference=refs[:2])


def test_the_average_voice_averages_the_conditioning_of_its_recordings(model, speech_dir, tmp_path):
    utts = read_data_dir(speech_dir).utterances
    voices = {}
    for u in utts:
        voices.setdefault(u.speaker, u.audio.source)
    a, b = list(voices.values())[:2]
    text = ["turn on the lights"]
    (one,), (alone,) = model.synthesize(text, reference=AverageVoice([a]), precision="fp32"), \
        model.synthesize(text, reference=a, precision="fp32")
    assert np.array_equal(one.mel, alone.mel)  # one recording: exactly its own voice
    (both,), (other,) = model.synthesize(text, reference=AverageVoice([a, b]), precision="fp32"), \
        model.synthesize(text, reference=b, precision="fp32")
    mean = alone.speaker + other.speaker
    assert np.allclose(both.speaker, mean / np.linalg.norm(mean), atol=1e-5)
    assert both.error is None and not np.array_equal(both.mel[: len(one.mel)], one.mel[: len(both.mel)])
    (bad,) = model.synthesize(text, reference=AverageVoice([a, str(tmp_path / "gone.wav")]))
    assert bad.waveform is None and "gone.wav" in bad.error
    with pytest.raises(ValueError, match="at least one"):
        AverageVoice([])


def test_segments_of_one_recording_are_different_references(model, speech_dir):
    from speechtext.audio import AudioSpec, probe_duration

    source = max((u.audio.source for u in read_data_dir(speech_dir).utterances), key=probe_duration)
    end = probe_duration(source)
    assert end > 1.6, "the fixture's longest utterance is too short for two 1.2 s segments"
    first, last = model.synthesize(["stop", "stop"], precision="fp32",
                                   reference=[AudioSpec(source, 0.0, 1.2), AudioSpec(source, end - 1.2, end)])
    alone = model.synthesize(["stop"], reference=AudioSpec(source, end - 1.2, end), precision="fp32")[0]
    assert not np.allclose(first.speaker, last.speaker) and np.allclose(last.speaker, alone.speaker, atol=1e-5)


def test_a_model_without_the_head_says_so(joint_dir, reference):
    with pytest.raises(SynthesisError, match="no synthesis head"):
        load_model(joint_dir).synthesize(["turn left"], reference=reference)


def test_cli_writes_wavs_and_conditioning(synthesis_dir, reference, tmp_path):
    from click.testing import CliRunner

    from speechtext.cli import cli

    out = tmp_path / "one.wav"
    run = CliRunner().invoke(cli, ["synthesize", synthesis_dir, "--text", "turn on the lights", "--reference", reference,
                                   "-o", str(out), "--emit-conditioning", str(tmp_path / "one.npz"), "--speed", "1.2"])
    assert run.exit_code == 0, run.output
    wave, rate = sf.read(out)
    cond = np.load(tmp_path / "one.npz")
    assert rate == 16000 and len(wave) == (cond["mel"].shape[0] - 1) * int(cond["hop_length"])
    assert cond["durations"].sum() == cond["mel"].shape[0] and str(cond["text"]) == "turn on the lights"
    assert cond["pitch"].shape == cond["durations"].shape
    text = tmp_path / "text"
    text.write_text("a1 stop the music\na2 turn @ left\na3 pause\n")
    run = CliRunner().invoke(cli, ["synthesize", synthesis_dir, "--kaldi-text", str(text), "--reference", reference,
                                   "--out-dir", str(tmp_path / "many"), "--emit-conditioning", str(tmp_path / "cond")])
    assert run.exit_code == 1 and "skipped a2" in run.output and "cannot speak: @" in run.output
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["a1.wav", "a3.wav"]
    assert sorted(p.name for p in (tmp_path / "cond").iterdir()) == ["a1.npz", "a3.npz"]
    run = CliRunner().invoke(cli, ["synthesize", synthesis_dir, "--text", "stop", "--reference", reference,
                                   "--reference", reference, "-o", str(tmp_path / "avg.wav")])
    assert run.exit_code == 0 and sf.read(tmp_path / "avg.wav")[0].size > 0, run.output
    run = CliRunner().invoke(cli, ["synthesize", synthesis_dir, "--text", "a", "--text", "b", "--reference", reference,
                                   "-o", str(out)])
    assert run.exit_code == 2 and "--out-dir DIR for many" in run.output
