"""External LMs: the token LSTM trains and predicts, loads strictly, fuses into beam search; n-gram
files go through kenlm and score whole words; bad LMs are clear errors."""
import math
import os
import subprocess
import sys

import pytest
import torch

import speechtext
from speechtext.lm import LMConfig, LMError, load_lm, train_lm
from speechtext.tokenizer import CharTokenizer, load_tokenizer

SENTENCES = ["turn on the lights", "stop the music", "play the next song", "turn off the lights"]


@pytest.fixture(scope="module")
def lm_dir(trained_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    (root / "text").write_text("".join(f"utt{i} {SENTENCES[i % 4]}\n" for i in range(200)))
    cfg = LMConfig(embed_dim=32, hidden_size=64, layers=1, steps=150, batch_size=16)
    return train_lm(str(root / "text"), load_tokenizer(trained_model), str(root / "lm"), cfg, has_ids=True,
                    progress=False)


def next_token(scorer, tokenizer, prefix: str) -> str:
    ids = torch.tensor([[tokenizer.vocab_size] + tokenizer.encode(prefix)])
    best = int(scorer.next_token(ids)[0].argmax())
    return "<eos>" if best == tokenizer.vocab_size else tokenizer.tokens[best]


def test_token_lm_learns_its_text(lm_dir, trained_model):
    tokenizer = load_tokenizer(trained_model)
    scorer = load_lm(lm_dir, tokenizer)
    assert next_token(scorer, tokenizer, "turn on the l") == "i"
    assert next_token(scorer, tokenizer, "stop the musi") == "c"
    assert next_token(scorer, tokenizer, "stop the music") == "<eos>"
    assert "held-out ppl/token" in open(os.path.join(lm_dir, "train.log")).read()
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(os.path.join(lm_dir, "model.safetensors")).st_mode & 0o777 == 0o666 & ~mask


def test_lm_fusion_in_joint_decoding(lm_dir, speech_dir, tmp_path):
    from speechtext.config import FusionConfig
    from speechtext.train import train
    from conftest import tiny_config

    cfg = tiny_config(max_steps=4, valid_interval=4)
    cfg.model.heads, cfg.model.fusion = ["ctc", "attention"], FusionConfig(dim=32, layers=1, heads=2, ff_dim=64)
    model_dir = train(cfg, speech_dir, speech_dir, str(tmp_path / "exp"))
    # the LM shares the recogniser's tokenizer: the hybrid model was trained on the same text
    model = speechtext.load_model(model_dir)
    assert load_tokenizer(model_dir).tokens == load_tokenizer(lm_dir).tokens
    wav = open(os.path.join(speech_dir, "wav.scp")).readline().split()[1]
    plain = model.transcribe([wav], decoder="joint", beam_size=3, precision="fp32")[0]
    fused = model.transcribe([wav], decoder="joint", beam_size=3, precision="fp32", lm=lm_dir, lm_weight=2.0)[0]
    assert plain.error is None and fused.error is None
    with pytest.raises(ValueError, match="add --decoder joint"):
        model.transcribe([wav], decoder="greedy", lm=lm_dir)


def test_bad_lms_are_clear_errors(lm_dir, trained_model, tmp_path):
    tokenizer = load_tokenizer(trained_model)
    with pytest.raises(LMError, match="expected a directory with lm.json"):
        load_lm(str(tmp_path), tokenizer)
    (tmp_path / "junk.arpa").write_text("this is not an ARPA file\n")
    with pytest.raises(LMError, match="not an ARPA or KenLM binary file|need the kenlm package"):
        load_lm(str(tmp_path / "junk.arpa"), tokenizer)
    other = CharTokenizer.build(["xyz"])
    with pytest.raises(LMError, match="another tokenizer"):
        load_lm(lm_dir, other)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(LMError, match="no text to train on"):
        train_lm(str(tmp_path / "empty.txt"), tokenizer, str(tmp_path / "lm"))


def test_lm_train_cli(trained_model, tmp_path):
    (tmp_path / "text").write_text("".join(s + "\n" for s in SENTENCES))
    out = subprocess.run([sys.executable, "-m", "speechtext.cli", "lm", "train", str(tmp_path / "text"), "--model",
                          trained_model, "--out-dir", str(tmp_path / "lm"), "--steps", "3"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert os.path.exists(tmp_path / "lm" / "lm.json") and not os.path.exists(tmp_path / "lm.tmp")


ARPA = """\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-1.0\t<s>\t-0.3
-1.0\t</s>
-0.5\tstop\t-0.2
-0.7\tmusic\t-0.2
-2.0\t<unk>

\\2-grams:
-0.1\t<s> stop
-0.2\tstop music
-0.1\tmusic </s>

\\end\\
"""


def test_ngram_lm_scores_words_when_they_end(trained_model, tmp_path):
    kenlm = pytest.importorskip("kenlm")
    (tmp_path / "lm.arpa").write_text(ARPA)
    tokenizer = CharTokenizer.build(["stop music"])
    scorer = load_lm(str(tmp_path / "lm.arpa"), tokenizer)
    sos = tokenizer.vocab_size
    scores = scorer.next_token(torch.tensor([[sos] + tokenizer.encode("stop mus")], dtype=torch.long))
    space = tokenizer.index["|"]
    # completing "mus" scores it as a word: log P(mus | stop) backs off to <unk>
    model = kenlm.Model(str(tmp_path / "lm.arpa"))
    expected = (model.score("stop mus", bos=True, eos=False) - model.score("stop", bos=True, eos=False)) * math.log(10)
    assert scores[0, space].item() == pytest.approx(expected, abs=1e-4)
    assert scores[0, tokenizer.index["s"]].item() == 0.0  # inside a word: no word score yet
    empty_slot = scorer.next_token(torch.tensor([[sos, sos, sos]]))  # what an empty beam slot holds
    assert torch.isfinite(empty_slot).all()
    eos = scorer.next_token(torch.tensor([[sos] + tokenizer.encode("stop music")]))[0, -1].item()
    assert eos == pytest.approx((model.score("stop music", bos=True, eos=True) - model.score("stop", bos=True, eos=False))
                                * math.log(10), abs=1e-4)
