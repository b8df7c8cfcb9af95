"""Parts of the synthesis head on real speech: the log-mel feature and Griffin-Lim, durations from CTC
alignment, text -> tokens, the length regulator, and the head learning a batch of espeak-ng speech."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from speechtext.align import AlignError, token_durations
from speechtext.audio import load_audio
from speechtext.config import MelConfig, ModelConfig, EncoderConfig, SynthesisConfig, TextEncoderConfig, FusionConfig
from speechtext.data import read_data_dir
from speechtext.mel import (LogMel, frame_pitch, get_vocoder, harmonic_comb, pitch_statistics, register_vocoder,
                            token_pitch)
from speechtext.models.model import SpeechTextModel
from speechtext.models.synthesis import length_regulate, pitch_contour
from speechtext.synthesis import SynthesisError, pad_rows, synthesis_tokens
from speechtext.text_tokenizer import TextTokenizer
from speechtext.tokenizer import CharTokenizer, PieceTokenizer

from conftest import TINY_ENCODER


def _waves(speech_dir, count):
    utts = read_data_dir(speech_dir).utterances[:count]
    return utts, [torch.from_numpy(load_audio(u.audio)) for u in utts]


def test_griffin_lim_inverts_the_log_mel_of_real_speech(speech_dir):
    _, (a, b) = _waves(speech_dir, 2)
    mel = LogMel(MelConfig())
    log_mel, lengths = mel(a[None])
    assert log_mel.shape == (1, len(a) // 160 + 1, 80) and int(lengths[0]) == log_mel.shape[1]
    vocode = get_vocoder("griffin-lim", mel, SynthesisConfig(griffin_lim_iters=32))
    wave = vocode(log_mel, lengths)[0]
    assert wave.dtype == np.float32 and len(wave) == (log_mel.shape[1] - 1) * 160 and np.abs(wave).max() <= 1.0
    again, _ = mel(torch.from_numpy(wave)[None])
    n = min(again.shape[1], log_mel.shape[1])
    speech = log_mel[0, :n] > np.log(1e-2)  # compare where there is speech, not the floor of silence
    error = (again[0, :n] - log_mel[0, :n]).abs()[speech].mean()
    other, _ = mel(b[None])
    m = min(n, other.shape[1])
    baseline = (other[0, :m] - log_mel[0, :m]).abs()[speech[:m]].mean()
    assert error < 0.3 and error < baseline / 5, (float(error), float(baseline))  # measured: 0.11 against 1.70


def test_log_mel_pads_with_silence_and_vocoders_are_a_named_seam(speech_dir):
    _, (a, b) = _waves(speech_dir, 2)
    mel = LogMel(MelConfig())
    batch = torch.nn.utils.rnn.pad_sequence([a, b], batch_first=True)
    log_mel, lengths = mel(batch, torch.tensor([len(a), len(b)]))
    short = int(lengths.argmin())
    assert torch.all(log_mel[short, lengths[short]:] == np.float32(np.log(1e-5)))
    with pytest.raises(ValueError, match="unknown vocoder 'hifigan'; registered: griffin-lim"):
        get_vocoder("hifigan", mel, SynthesisConfig())
    register_vocoder("silence", lambda m, cfg: lambda x, n: [np.zeros(int(k) * 160, np.float32) for k in n])
    assert len(get_vocoder("silence", mel, SynthesisConfig())(log_mel, lengths)[0]) == int(lengths[0]) * 160


def test_token_durations_split_halfway_between_ctc_spikes():
    vocab, blank, frames = 5, 0, 20
    log_probs = torch.full((frames, vocab), -9.0)
    log_probs[:, blank] = -0.01
    for frame, token in [(4, 1), (10, 2), (12, 3)]:  # spikes: tokens 1, 2, 3
        log_probs[frame] = -9.0
        log_probs[frame, token] = -0.01
    durations = token_durations(log_probs, [1, 2, 3], blank, num_frames=40)
    # centres 4.5, 10.5, 12.5 -> token edges 1.5 | 7.5 | 11.5 | 13.5, silences before and after (x2: 40 frames)
    assert durations == [3, 12, 8, 4, 13] and sum(durations) == 40
    with pytest.raises(AlignError, match="cannot be aligned"):
        token_durations(log_probs[:2], [1, 2, 3], blank, 4)


def test_synthesis_tokens_tie_characters_to_text_encoder_tokens():
    texts = ["turn on the lights", "stop the music"]
    tok, text_tok = CharTokenizer.build(texts), TextTokenizer.train(texts, vocab_size=60)
    tokens, index = synthesis_tokens("Turn  on", tok, text_tok)
    silence = tok.index["|"]
    assert tokens == [silence] + tok.encode("turn on") + [silence] and len(index) == len(tokens)
    pieces = text_tok.backend.encode("turn on")
    assert index[0] == index[5] == index[-1] == -1  # silences and the space
    assert {pieces.tokens[k] for k in index[1:5]} <= {"turn", "tu", "##rn", "t", "##u", "##r", "##n"}
    assert {pieces.tokens[k] for k in index[6:8]} <= {"on", "o", "##n"}
    with pytest.raises(SynthesisError, match="cannot speak: 7 @"):
        synthesis_tokens("turn @ 7", tok, text_tok)
    with pytest.raises(SynthesisError, match="empty text"):
        synthesis_tokens("   ", tok, text_tok)


def test_synthesis_tokens_of_word_pieces_lie_where_their_first_character_does():
    texts = ["turn on the lights", "turn on the music", "stop the music"]
    tok, text_tok = PieceTokenizer.build(texts, merges=40), TextTokenizer.train(texts, vocab_size=60)
    chars, char_index = synthesis_tokens("turn on lights", CharTokenizer.build(texts), text_tok)
    tokens, index = synthesis_tokens("turn on lights", tok, text_tok)
    silence = tok.index["|"]
    assert tokens == [silence] + tok.encode("turn on lights") + [silence] and len(tokens) < len(chars)
    assert [tok.tokens[t] for t in tokens[1:4]] == ["turn", "|", "on"]
    # each piece takes the text-encoder position of its first character: "turn" of t, "on" of o
    assert index[:4] == [-1, char_index[1], -1, char_index[6]] and index[-1] == -1


def test_length_regulator_repeats_states_by_duration():
    states = torch.arange(6, dtype=torch.float32).view(2, 3, 1)
    frames, lengths = length_regulate(states, torch.tensor([[2, 0, 1], [1, 1, 1]]))
    assert lengths.tolist() == [3, 3] and frames[0, :, 0].tolist() == [0, 0, 2] and frames[1, :, 0].tolist() == [3, 4, 5]


def _synthesis_batch(speech_dir, model, tok, text_tok, mel):
    utts, waves = _waves(speech_dir, 4)
    texts = [u.text for u in utts]
    padded = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    lengths = torch.tensor([len(w) for w in waves])
    target, mel_lengths = mel(padded, lengths)
    with torch.no_grad():
        log_probs, frame_lengths = model.ctc_log_probs(padded, lengths)
    rows, index, durations = [], [], []
    for i, text in enumerate(texts):
        t, k = synthesis_tokens(text, tok, text_tok)
        rows.append(t)
        index.append(k)
        durations.append(token_durations(log_probs[i, : frame_lengths[i]], t[1:-1], tok.blank_id, int(mel_lengths[i])))
    syn_tokens, syn_lengths = pad_rows(rows)
    text_ids, text_lengths = text_tok.encode(texts)
    ref = [waves[(i + 1) % 4] for i in range(4)]  # another utterance as the reference
    pitch, voiced = token_pitch(frame_pitch(padded, lengths, mel.cfg.hop_length), pad_rows(durations)[0])
    return {"f0": frame_pitch(padded, lengths, mel.cfg.hop_length), "pitch": pitch, "voiced": voiced, "syn_tokens": syn_tokens, "syn_token_lengths": syn_lengths, "syn_fused_index": pad_rows(index, -1)[0],
            "durations": pad_rows(durations)[0], "mel": target, "mel_lengths": mel_lengths,
            "text_ids": text_ids, "text_lengths": text_lengths, "speaker_ids": torch.tensor([0, 0, 1, 1]),
            "ref_waveforms": torch.nn.utils.rnn.pad_sequence(ref, batch_first=True),
            "ref_lengths": torch.tensor([len(w) for w in ref])}


def test_synthesis_head_learns_real_speech_through_the_shared_fusion(speech_dir):
    torch.manual_seed(0)
    utts = read_data_dir(speech_dir).utterances
    tok, text_tok = CharTokenizer.build(u.text for u in utts), TextTokenizer.train([u.text for u in utts], 60)
    syn = SynthesisConfig(dim=64, encoder_layers=2, decoder_layers=2, postnet_layers=2, speaker_dim=16, num_speakers=2,
                          dropout=0.0)
    config = ModelConfig(encoder=EncoderConfig(preset="tiny", overrides=dict(TINY_ENCODER)), heads=["ctc", "synthesis"],
                         text_encoder=TextEncoderConfig(preset="tiny", overrides={"num_hidden_layers": 1}),
                         fusion=FusionConfig(dim=32, layers=1, heads=2, ff_dim=64, dropout=0.0), synthesis=syn)
    model = SpeechTextModel(config, tok.vocab_size, tok.blank_id, text_vocab_size=text_tok.vocab_size)
    batch = _synthesis_batch(speech_dir, model, tok, text_tok, LogMel(syn.mel))
    assert (batch["durations"].sum(1) == batch["mel_lengths"]).all()
    optimiser = torch.optim.Adam(model.heads["synthesis"].parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss, stats = model(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        first = first or stats
    assert set(stats) >= {"mel", "postnet", "duration", "speaker", "pitch", "voicing", "loss"}
    assert stats["mel"] < 0.5 * first["mel"] and stats["duration"] < first["duration"], (first, stats)
    assert stats["pitch"] < 0.5 * first["pitch"] and stats["voicing"] < first["voicing"], (first, stats)


def _glide(seconds: float, f0: float, rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """A harmonic tone whose F0 wavers +-10 % around ``f0``: ``(samples, F0 per sample)``."""
    t = np.arange(int(seconds * rate)) / rate
    hz = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(hz) / rate
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32), hz


@pytest.mark.parametrize("f0", [90.0, 220.0])
def test_pitch_tracker_follows_a_moving_f0_and_calls_noise_and_silence_unvoiced(f0):
    tone, hz = _glide(2.0, f0)
    tone[:4000] = 0.0  # a silent lead-in
    noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    waves = torch.zeros(2, len(tone))
    waves[0], waves[1, :16000] = torch.from_numpy(tone), torch.from_numpy(noise)
    pitch = frame_pitch(waves, torch.tensor([len(tone), 16000]), 160)
    assert pitch.shape == (2, len(tone) // 160 + 1)  # LogMel's frames
    truth = torch.from_numpy(hz[np.minimum(np.arange(pitch.shape[1]) * 160, len(hz) - 1)]).float()
    voiced = pitch[0] > 0
    assert not voiced[:22].any() and voiced[30:].float().mean() > 0.95
    assert ((pitch[0][voiced] - truth[voiced]).abs() / truth[voiced]).max() < 0.02
    assert not (pitch[1] > 0).any()
    stats = pitch_statistics(pitch[:1])
    assert abs(float(stats[0, 0]) - np.log(f0 / 100)) < 0.02 and 0.02 < float(stats[0, 1]) < 0.1


def test_pitch_tracker_agrees_with_librosa_pyin_on_speech(speech_dir):
    import librosa

    utt = read_data_dir(speech_dir).utterances[0]
    wave = load_audio(utt.audio)
    ours = frame_pitch(torch.from_numpy(wave)[None], torch.tensor([len(wave)]), 160)[0].numpy()
    theirs, voiced, _ = librosa.pyin(wave, fmin=60, fmax=500, sr=16000, frame_length=1024, hop_length=160)
    both = (ours > 0) & voiced[: len(ours)]
    assert both.sum() > 0.6 * voiced.sum() > 0
    assert np.median(np.abs(ours[both] - theirs[both]) / theirs[both]) < 0.02


def test_token_pitch_averages_the_voiced_frames_of_each_token():
    f0 = torch.tensor([[0, 0, 100, 100, 200, 200, 0, 0, 150, 0]], dtype=torch.float)
    log_f0, voiced = token_pitch(f0, torch.tensor([[2, 2, 2, 3, 0, 1]]))
    assert voiced.tolist() == [[False, True, True, False, False, False]]
    assert torch.allclose(log_f0[0, 1:3], torch.log(torch.tensor([1.0, 2.0])))
    assert (log_f0[0, [0, 3, 4, 5]] == 0).all()


@pytest.mark.parametrize("f0", [100.0, 220.0])
def test_harmonic_comb_is_the_log_mel_pattern_of_a_harmonic_tone(f0):
    mel = LogMel(MelConfig())
    t = np.arange(16000) / 16000
    tone = 0.05 * sum(np.sin(2 * np.pi * k * f0 * t) for k in range(1, int(8000 / f0)))
    real = mel(torch.tensor(tone, dtype=torch.float32)[None])[0][0, 50]
    comb = harmonic_comb(torch.tensor([[f0, 0.0]]), mel)[0]
    assert np.corrcoef((real - real.mean()).numpy(), comb[0].numpy())[0, 1] > 0.85
    other = harmonic_comb(torch.tensor([[f0 * 1.25]]), mel)[0, 0]
    assert np.corrcoef(real.numpy(), other.numpy())[0, 1] < 0.5  # another pitch puts its harmonics elsewhere
    assert abs(float(comb[0].mean())) < 1e-5 and (comb[1] == 0).all()  # zero-mean; unvoiced: nothing


def test_pitch_contour_glides_between_voiced_tokens_and_keeps_their_voicing():
    log_f0 = torch.log(torch.tensor([[1.0, 1.0, 2.0, 1.5, 1.0], [1.5, 0.0, 0.0, 0.0, 0.0]]))
    voiced = torch.tensor([[False, True, True, False, True], [True, False, False, False, False]])
    durations = torch.tensor([[2, 4, 4, 3, 2], [3, 2, 0, 0, 0]])
    hz = pitch_contour(log_f0, voiced, durations)
    assert hz.shape == (2, 15)
    voiced_frames = length_regulate(voiced[..., None].float(), durations)[0][..., 0] > 0
    assert ((hz > 0) == voiced_frames).all()
    # token centres at frames 3.5 (100 Hz) and 7.5 (200 Hz): a straight line in log F0 between them
    assert torch.allclose(hz[0, 2:8], 100 * 2 ** ((torch.arange(2, 8) - 3.5).clamp(min=0) / 4), rtol=1e-4)
    assert torch.allclose(hz[1, :3], torch.full((3,), 150.0))  # one voiced token: held
