"""The synthesis evaluation's own parts on real speech: MCD-DTW and the choice of references."""
from __future__ import annotations

import itertools
import os
import random

import librosa

from speechtext.audio import load_audio
from speechtext.data import read_data_dir

from eval_synthesis import chance_nearest_of_draw, mcd_dtw  # recipes/ is on sys.path: conftest.py
from synthesize_set import average_voice, pairs_of


def test_mcd_dtw_is_zero_for_the_same_audio_and_tolerates_tempo(speech_dir):
    utts = read_data_dir(speech_dir).utterances
    a, b = load_audio(utts[0].audio), load_audio(utts[5].audio)
    slower = librosa.effects.time_stretch(a, rate=0.8)  # same voice and words, 25 % slower
    assert mcd_dtw(a, a) == 0.0
    same, other = mcd_dtw(slower, a), mcd_dtw(b, a)
    assert 0.0 < same < other, (same, other)


def test_references_are_never_the_target_and_come_from_the_right_voice(speech_dir):
    data = read_data_dir(speech_dir)
    pairs = pairs_of(data, voices=3, per_voice=2, unrelated=False)
    assert len(pairs) == 6 and len({t.speaker for t, _ in pairs}) == 3
    for target, ref in pairs:
        assert ref.utt_id != target.utt_id and ref.speaker == target.speaker
        others = [u for u in data if u.speaker == target.speaker and u.utt_id != target.utt_id]
        assert ref.duration == max(u.duration for u in others)
    for target, ref in pairs_of(data, voices=3, per_voice=2, unrelated=True):
        assert ref.speaker != target.speaker


def test_the_average_voice_takes_the_longest_utterance_of_voices_spread_over_the_set(speech_dir):
    data = read_data_dir(speech_dir)
    voices = sorted({u.speaker for u in data})
    assert len(voices) >= 3
    average = average_voice(data, voices=2)
    picked = [next(u for u in data if u.audio == ref) for ref in average.references]
    assert [u.speaker for u in picked] == [voices[0], voices[len(voices) // 2]]
    for u in picked:
        assert u.duration == max(v.duration for v in data if v.speaker == u.speaker)
    assert len(average_voice(data, voices=100).references) == len(voices)
    longest = {v: max(u.duration for u in data if u.speaker == v) for v in voices}
    cut = sorted(longest.values())[1]  # voices whose every utterance is shorter cannot be references
    kept = average_voice(data, voices=100, min_seconds=cut).references
    assert len(kept) == sum(d >= cut for d in longest.values()) == len(voices) - 1


def test_the_chance_against_a_random_draw_counts_every_draw():
    rng = random.Random(3)
    for _ in range(20):
        others = [rng.random() for _ in range(rng.randint(9, 13))]
        own = rng.random()
        draws = list(itertools.combinations(others, 9))
        brute = sum(all(s < own for s in draw) for draw in draws) / len(draws)
        assert abs(chance_nearest_of_draw(own, others, 9) - brute) < 1e-12
    assert chance_nearest_of_draw(2.0, [1.0] * 12, 9) == 1.0
    assert chance_nearest_of_draw(0.5, [0.1] * 8 + [0.9] * 4, 9) == 0.0  # only 8 below: every draw holds a nearer voice
