"""The transcript intent classifier: fitted on training transcripts, saved as plain data."""
import pytest
import torch

from speechtext.intent_text import TranscriptIntents, fit_transcript_intents, ngrams

TRAIN = [("turn on the kitchen lights", "on_lights_kitchen"), ("switch the kitchen lights on", "on_lights_kitchen"),
         ("turn off the kitchen lights", "off_lights_kitchen"), ("kitchen lights off", "off_lights_kitchen"),
         ("turn on the bedroom heating", "on_heat_bedroom"), ("bedroom heating on", "on_heat_bedroom"),
         ("turn off the bedroom heating", "off_heat_bedroom"), ("switch the bedroom heating off", "off_heat_bedroom"),
         ("call five one two", "call"), ("dial nine nine", "call"), ("five one two", "plain"), ("nine nine", "plain")]
INTENTS = sorted({label for _, label in TRAIN})


def fit(pairs=TRAIN):
    return fit_transcript_intents([t for t, _ in pairs], [lab for _, lab in pairs], INTENTS)


def predict(model, texts):
    return [model.intents[i] for i in model.log_probs(texts).argmax(-1).tolist()]


def test_ngrams_are_words_and_edge_marked_bigrams():
    assert ngrams("Lights OFF") == ["lights", "off", "<s> lights", "lights off", "off </s>"]


def test_fit_learns_the_training_phrasings_and_reads_new_ones():
    model = fit()
    assert predict(model, [t for t, _ in TRAIN]) == [lab for _, lab in TRAIN]
    # phrasings never trained on, one misheard word each, still carry their intent's words
    assert predict(model, ["switch the kitchen lights off", "the bedroom heating on please", "call two two"]) == [
        "off_lights_kitchen", "on_heat_bedroom", "call"]
    probs = model.log_probs(["", "zzz unknown words"]).exp()  # nothing known: the prior, still a distribution
    assert torch.allclose(probs.sum(-1), torch.ones(2)) and torch.allclose(probs[0], probs[1])


def test_repeated_pairs_weigh_like_their_count_and_the_fit_is_deterministic():
    doubled = fit(TRAIN + TRAIN[:1])
    assert torch.equal(fit(TRAIN + TRAIN[:1]).weight, doubled.weight)
    assert not torch.equal(fit().weight, doubled.weight)


def test_json_round_trip_and_a_damaged_file_is_a_clear_error(tmp_path):
    model = fit()
    model.save(str(tmp_path))
    again = TranscriptIntents.load(str(tmp_path))
    texts = ["turn on the kitchen lights", "dial five"]
    assert again.grams == model.grams and torch.equal(again.log_probs(texts), model.log_probs(texts))
    assert TranscriptIntents.load(str(tmp_path / "none")) is None
    (tmp_path / "transcript_intents.json").write_text('{"ngrams": ["a"], "intents": ["x"], "weight": "AAAA"}')
    with pytest.raises(ValueError, match="transcript_intents.json: unreadable transcript intent classifier"):
        TranscriptIntents.load(str(tmp_path))
