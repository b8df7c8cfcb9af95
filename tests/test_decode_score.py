import math
import subprocess
import sys

import pytest
import torch

from speechtext.decode import ctc_greedy, ctc_prefix_beam_search
from speechtext.score import error_rates, score_files


def log_probs(rows):
    return torch.tensor(rows, dtype=torch.float).log()


def test_greedy_collapses_repeats_and_blanks():
    # frames: a a _ a b _  -> "a a b"
    lp = torch.full((6, 3), -10.0)
    for t, k in enumerate([1, 1, 0, 1, 2, 0]):
        lp[t, k] = 0.0
    assert ctc_greedy(lp[None], torch.tensor([6]), 0) == [[1, 1, 2]]
    assert ctc_greedy(lp[None], torch.tensor([2]), 0) == [[1]]


def test_beam_search_beats_greedy_when_paths_merge():
    # Greedy picks blank,blank (p=.36) but "a" has total probability .64 over its paths.
    lp = log_probs([[0.6, 0.4], [0.6, 0.4]])
    assert ctc_greedy(lp[None], torch.tensor([2]), 0) == [[]]
    best, score = ctc_prefix_beam_search(lp, 0, beam=4)[0]
    assert best == (1,) and math.isclose(math.exp(score), 0.4 * 0.4 + 0.4 * 0.6 + 0.6 * 0.4, rel_tol=1e-5)


def test_beam_search_keeps_doubled_tokens_apart():
    lp = log_probs([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])  # a _ a
    assert ctc_prefix_beam_search(lp, 0, beam=8)[0][0] == (1, 1)


def test_beam_of_zero_is_an_error():
    with pytest.raises(ValueError, match="beam must be at least 1"):
        ctc_prefix_beam_search(torch.zeros(2, 2), 0, beam=0)


def test_error_rates_and_pra(tmp_path):
    result = error_rates(["turn on the lights", "stop"], ["turn of the lights", "stop"])
    assert result["wer"] == pytest.approx(20.0) and result["sub"] == 1 and result["sentence_errors"] == 1
    (tmp_path / "ref").write_text("u1 turn on the lights\nu2 stop now\nu3 hello\n")
    (tmp_path / "hyp").write_text("u1 turn on lights\nu2 stop now please\n")
    result = score_files(str(tmp_path / "ref"), str(tmp_path / "hyp"), str(tmp_path))
    assert (result["del"], result["ins"], result["missing"]) == (2, 1, 1)
    pra = (tmp_path / "per_utt.pra").read_text()
    assert "id: u1" in pra and "REF:  turn on THE lights" in pra and "HYP:  turn on *** lights" in pra
    assert "Scores: (#C #S #D #I) 3 0 1 0" in pra


def test_the_cli_scores_and_validates_without_importing_torch(tmp_path):
    # the recipes run `speechtext score` and `validate-data-dir` many times: ~2 s each with torch imported
    import numpy as np
    import soundfile as sf

    (tmp_path / "ref").write_text("u1 turn on the lights\nu2 stop\n")
    (tmp_path / "hyp").write_text("u1 turn on the light\nu2 stop\n")
    data = tmp_path / "data"
    data.mkdir()
    sf.write(data / "u1.wav", np.zeros(16000, dtype=np.float32), 16000)
    (data / "wav.scp").write_text(f"u1 {data / 'u1.wav'}\n")
    (data / "text").write_text("u1 turn on the lights\n")
    code = ("import sys; from speechtext.cli import cli\n"
            f"cli.main(args=['score', {str(tmp_path / 'ref')!r}, {str(tmp_path / 'hyp')!r}], standalone_mode=False)\n"
            f"cli.main(args=['validate-data-dir', {str(data)!r}], standalone_mode=False)\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "%WER 20.00" in out and ": OK" in out and out.strip().endswith("no torch"), out
