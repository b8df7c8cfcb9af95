"""Hybrid CTC/attention recognition: the attention decoder trains beside CTC, CTC prefix scores are
exact, and the label-synchronous beam search serves attention-only and joint decoding."""
import itertools
import json
import os

import pytest
import torch
import torch.nn.functional as F

import speechtext
from speechtext.beam_search import CTCPrefixScorer, SearchOptions, TorchDecoder, beam_search
from conftest import wavs


def brute_prefix(log_probs: torch.Tensor, prefix: tuple, blank: int = 0) -> float:
    """log P(the CTC output starts with ``prefix``), summing every frame path."""
    frames, vocab = log_probs.shape
    total = []
    for path in itertools.product(range(vocab), repeat=frames):
        out = [t for t, _ in itertools.groupby(path) if t != blank]
        if tuple(out[: len(prefix)]) == prefix:
            total.append(sum(float(log_probs[t, c]) for t, c in enumerate(path)))
    return float(torch.logsumexp(torch.tensor(total), 0))


def test_ctc_prefix_scores_match_brute_force_and_ctc_loss():
    torch.manual_seed(0)
    log_probs = torch.randn(1, 6, 3).log_softmax(-1)  # blank 0, tokens 1 and 2
    scorer = CTCPrefixScorer(log_probs, torch.tensor([6]), blank=0)
    r, _ = scorer.initial(1)
    prefix, empty = (), torch.tensor([True])
    for token in (1, 1, 2):  # a repeat, which CTC only allows with a blank between
        last = torch.tensor([prefix[-1] if prefix else 0])
        psi = scorer.scores(r, last, empty)
        for c in (1, 2):
            assert abs(float(psi[0, c]) - brute_prefix(log_probs[0], prefix + (c,))) < 1e-4
        r = scorer.advance(r, last, empty, torch.tensor([0]), torch.tensor([token]))
        prefix, empty = prefix + (token,), torch.tensor([False])
    psi = scorer.scores(r, torch.tensor([2]), empty)
    whole = -F.ctc_loss(log_probs[0], torch.tensor(prefix), torch.tensor([6]), torch.tensor([3]), reduction="sum")
    assert abs(float(psi[0, -1]) - float(whole)) < 1e-4  # eos: the complete sequence's probability


def test_long_peaky_utterances_keep_exact_states_for_every_kept_hypothesis():
    # A trained CTC head is peaky and utterances run to hundreds of frames: the frame sums reach
    # thousands in log space, where a log-cumulative recursion must still be exact.
    torch.manual_seed(3)
    frames, vocab = 300, 6
    log_probs = (torch.randn(2, frames, vocab) * 8).log_softmax(-1)
    lengths = torch.tensor([frames, 220])
    scorer = CTCPrefixScorer(log_probs, lengths, blank=0)
    owner = torch.tensor([0, 0, 1, 1])
    r, _ = scorer.initial(2)
    prefixes = [(), (), (), ()]
    empty, last, prefix_score = torch.ones(4, dtype=torch.bool), torch.zeros(4, dtype=torch.long), torch.zeros(4)
    for src, token in (([0, 1, 2, 3], [1, 2, 3, 3]), ([1, 0, 2, 3], [2, 1, 3, 4]), ([1, 1, 3, 2], [2, 5, 4, 3])):
        src, token = torch.tensor(src), torch.tensor(token)
        psi = scorer.scores(r, last, empty)
        # Every output that starts with a prefix either ends there (eos) or goes on with one token.
        assert torch.allclose(psi[:, 1:].logsumexp(1), prefix_score, atol=1e-3)
        r, prefix_score = scorer.advance(r, last, empty, src, token), psi[src, token]
        prefixes = [prefixes[s] + (c,) for s, c in zip(src.tolist(), token.tolist())]
        last, empty = token, torch.zeros(4, dtype=torch.bool)
    eos = scorer.scores(r, last, empty)[:, -1]  # each kept prefix's complete probability
    whole = -F.ctc_loss(log_probs[owner].transpose(0, 1), torch.tensor(prefixes), lengths[owner], torch.full((4,), 3), reduction="none")
    assert torch.allclose(eos.double(), whole.double(), rtol=1e-5, atol=1e-3)


def test_padded_frames_do_not_change_prefix_scores():
    torch.manual_seed(1)
    short = torch.randn(1, 5, 4).log_softmax(-1)
    padded = torch.cat([short, torch.randn(1, 3, 4).log_softmax(-1)], 1)

    def first_step(log_probs):
        scorer = CTCPrefixScorer(log_probs, torch.tensor([5]), blank=0)
        r, _ = scorer.initial(1)
        return scorer.scores(r, torch.tensor([0]), torch.tensor([True]))

    assert torch.allclose(first_step(short), first_step(padded), atol=1e-5)


def test_attention_loss_is_logged_and_weighted(hybrid_model):
    rows = [json.loads(line) for line in open(os.path.join(os.path.dirname(hybrid_model), "metrics.jsonl"))]
    first = next(r for r in rows if "attention" in r)
    assert abs(first["loss"] - (0.3 * first["ctc"] + 0.7 * first["attention"])) < 1e-3 * first["loss"]


def greedy_attention(model, frames, lengths):
    """Step-by-step argmax of the attention decoder: what a beam of 1 without CTC must return."""
    head, fusion = model.heads["attention"], model.fusion
    memory, out = fusion.memory(frames, lengths), []
    for b in range(frames.shape[0]):
        tokens = [head.sos_eos]
        while len(tokens) <= int(lengths[b]):
            logits = head.logits(fusion, torch.tensor([tokens]), torch.tensor([len(tokens)]), memory.rows(torch.tensor([b])))
            logits[0, -1, 0] = float("-inf")  # blank is never a decoder output
            nxt = int(logits[0, -1].argmax())
            if nxt == head.sos_eos:
                break
            tokens.append(nxt)
        out.append(tokens[1:])
    return out


def test_beam_of_one_without_ctc_is_greedy_attention_decoding(hybrid_model, speech_dir):
    model = speechtext.load_model(hybrid_model)
    from speechtext.audio import load_audio

    frames, lengths = model.encode([(i, load_audio(w)) for i, w in enumerate(wavs(speech_dir)[:3])], "fp32")
    with torch.inference_mode():
        log_probs = model.model.heads["ctc"](frames)
        got = beam_search(TorchDecoder(model.model, frames, lengths), log_probs, lengths, 0,
                          SearchOptions(beam=1, ctc_weight=0.0, end_margin=1e9))
        assert got == greedy_attention(model.model, frames, lengths)


def test_every_decoder_transcribes_and_batches_agree(hybrid_model, speech_dir):
    model = speechtext.load_model(hybrid_model)
    files = wavs(speech_dir)[:4]
    for decoder in ("greedy", "ctc", "attention", "joint"):
        together = model.transcribe(files, precision="fp32", decoder=decoder, beam_size=3)
        alone = [model.transcribe([f], precision="fp32", decoder=decoder, beam_size=3)[0] for f in files]
        assert all(r.error is None for r in together)
        assert [r.text for r in together] == [r.text for r in alone], decoder


def test_decoder_option_errors(hybrid_model, trained_model, speech_dir):
    model = speechtext.load_model(hybrid_model)
    with pytest.raises(ValueError, match="beam size must be at least 1"):
        model.transcribe(wavs(speech_dir)[:1], decoder="joint", beam_size=0)
    with pytest.raises(ValueError, match="ctc weight must be between 0 and 1"):
        model.transcribe(wavs(speech_dir)[:1], decoder="joint", ctc_weight=1.5)
    with pytest.raises(ValueError, match="no attention decoder"):
        speechtext.load_model(trained_model).transcribe(wavs(speech_dir)[:1], decoder="joint")
