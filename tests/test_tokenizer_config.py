import json

import pytest

from speechtext.config import ConfigError, load_config, parse_overrides
from speechtext.tokenizer import CharTokenizer, PieceTokenizer, load_tokenizer


def test_char_tokenizer_round_trip(tmp_path):
    tok = CharTokenizer.build(["Turn on the lights", "stop"])
    ids = tok.encode("turn  ON the lights")
    assert tok.decode(ids) == "turn on the lights" and tok.blank_id == 0
    assert tok.encode("xyz").count(tok.unk_id) == 3  # none of x, y, z is in the training text
    tok.save(str(tmp_path))
    assert load_tokenizer(str(tmp_path)).tokens == tok.tokens


def test_word_pieces_learn_frequent_words_and_still_spell_new_ones(tmp_path):
    texts = ["turn on the light", "turn off the light", "turn on the heating", "stop"] * 3
    tok = PieceTokenizer.build(texts, merges=12)
    assert len(tok.merges) == 12 and tok.vocab_size == CharTokenizer.build(texts).vocab_size + 12
    # "turn" and "the" (six times each) become single units before any rarer word does
    assert tok.pieces("turn") == ["turn"] and tok.pieces("the") == ["the"] and len(tok.pieces("heating")) > 1
    ids = tok.encode("Turn  ON the   lights")
    assert tok.decode(ids) == "turn on the lights"
    assert [tok.tokens[i] for i in ids[:2]] == ["turn", "|"]  # the delimiter stays a unit between words
    assert tok.pieces("shut") == list("shut") and tok.encode("z")[0] == tok.unk_id  # new word, new character
    tok.save(str(tmp_path))
    loaded = load_tokenizer(str(tmp_path))
    assert isinstance(loaded, PieceTokenizer) and loaded.encode("turn on the heating") == tok.encode("turn on the heating")
    # enough merges: every word one unit; the merges stop when no pair is left
    whole = PieceTokenizer.build(texts, merges=1000)
    assert all(len(whole.pieces(w)) == 1 for w in "turn on off the light heating stop".split())


def test_doubled_letters_are_one_unit_and_the_rest_stays_characters(tmp_path):
    """CTC must emit a blank between two equal outputs; ``double_letters`` spells ``ll`` as one unit."""
    from speechtext.config import Config
    from speechtext.tokenizer import make_tokenizer

    texts = ["call the jazz feet", "turn off the light", "stop"]
    config = Config()
    config.model.double_letters = True
    tok = make_tokenizer(config, texts)
    assert sorted(tok.merges) == [("e", "e"), ("f", "f"), ("l", "l"), ("z", "z")]
    assert tok.pieces("call") == ["c", "a", "ll"] and tok.pieces("jazz") == ["j", "a", "zz"]
    assert tok.pieces("light") == list("light") and tok.pieces("zzz") == ["zz", "z"]
    assert tok.decode(tok.encode("Feet  off")) == "feet off"
    tok.save(str(tmp_path))
    assert load_tokenizer(str(tmp_path)).encode("call off") == tok.encode("call off")


def test_unknown_tokenizer_kind_is_named(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"kind": "wordpiece", "tokens": []}))
    with pytest.raises(ValueError, match=r"tokenizer.json: unknown tokenizer kind 'wordpiece' \(known: char, bpe\)"):
        load_tokenizer(str(tmp_path))


def test_hf_vocab_import(tmp_path):
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "A": 5, "B": 6}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    tok = CharTokenizer.from_hf_vocab(str(tmp_path / "vocab.json"))
    assert tok.blank_id == 0 and tok.decode([5, 4, 6, 1]) == "A B"


def test_config_rejects_unknown_keys_and_bad_types(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 0.001\n  warmup: 10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.train: unknown key 'warmup'"):
        load_config(str(bad))
    bad.write_text("train:\n  lr: fast\n")
    with pytest.raises(ConfigError, match=r"train.lr: expected a number"):
        load_config(str(bad))
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))


def test_config_overrides(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("model:\n  encoder:\n    preset: tiny\n")
    cfg = load_config(str(good), {"train.lr": 0.5, "model.encoder.overrides": {"hidden_size": 8}})
    assert cfg.train.lr == 0.5 and cfg.model.encoder.overrides == {"hidden_size": 8}


def test_command_line_overrides_read_numbers_as_a_config_file_does(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  lr: 1e-4\n  warmup_steps: 10\n")  # YAML 1.1 alone reads 1e-4 as a string
    overrides = parse_overrides(["train.warmup_steps=20", "train.lr=1e-3", "model.encoder.overrides={hidden_size: 8}"])
    assert overrides == {"train.warmup_steps": 20, "train.lr": 0.001, "model.encoder.overrides": {"hidden_size": 8}}
    assert load_config(str(good)).train.lr == 1e-4
    cfg = load_config(str(good), overrides)
    assert (cfg.train.lr, cfg.train.warmup_steps, cfg.model.encoder.overrides) == (0.001, 20, {"hidden_size": 8})
    assert parse_overrides(["data.dir=a=b", "train.amp=none"]) == {"data.dir": "a=b", "train.amp": "none"}
    with pytest.raises(ConfigError, match=r"--set: expected KEY=VALUE .* got 'train.lr'"):
        parse_overrides(["train.lr"])
    with pytest.raises(ConfigError, match=r"--set train.lr: not valid YAML"):
        parse_overrides(["train.lr=[1, 2"])

