import json

import pytest

from speechtext.config import ConfigError, load_config
from speechtext.tokenizer import CharTokenizer, load_tokenizer


def test_char_tokenizer_round_trip(tmp_path):
    tok = CharTokenizer.build(["Turn on the lights", "stop"])
    ids = tok.encode("turn  ON the lights")
    assert tok.decode(ids) == "turn on the lights" and tok.blank_id == 0
    assert tok.encode("xyz").count(tok.unk_id) == 3  # none of x, y, z is in the training text
    tok.save(str(tmp_path))
    assert load_tokenizer(str(tmp_path)).tokens == tok.tokens


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
