"""The cross-modal building blocks: text tokenizer and encoder, shared space, fusion."""
import json
import math

import pytest
import torch

from speechtext.batching import local_candidates
from speechtext.config import FusionConfig, TextEncoderConfig
from speechtext.models.command import CommandHead, intent_part_matrix, sample_candidates
from speechtext.models.audio_encoder import frame_mask
from speechtext.models.fusion import FusionBlock
from speechtext.models.shared_space import SharedSpace, contrastive_loss, masked_mean
from speechtext.models.text_encoder import build_text_encoder, encode_text
from speechtext.text_tokenizer import TextTokenizer, TextTokenizerError

PHRASES = ["turn on the lights in the kitchen", "stop the music", "call five one two", "move forward two meters"]


def fusion(**kw):
    torch.manual_seed(0)
    return FusionBlock(FusionConfig(dim=32, layers=2, heads=4, ff_dim=64, dropout=0.0, **kw), 24, 40).eval()


def test_fusion_ignores_padding_on_both_sides():
    block = fusion()
    q, f = torch.randn(2, 5, 24), torch.randn(2, 30, 40)
    out, _ = block(q, torch.tensor([5, 3]), f, torch.tensor([30, 17]))
    alone, _ = block(q[1:, :3], torch.tensor([3]), f[1:, :17], torch.tensor([17]))
    assert out.shape == (2, 5, 32) and torch.allclose(out[1, :3], alone[0], atol=1e-5)


def test_fusion_is_pre_norm_attention_and_shared_memory_rows_change_nothing():
    block = fusion()
    q, f, lengths = torch.randn(3, 5, 24), torch.randn(2, 30, 40), torch.tensor([30, 17])
    rows = torch.tensor([1, 0, 1])
    out, _ = block(q, torch.tensor([5, 4, 2]), None, None, memory=block.memory(f, lengths).rows(rows))
    # the same layers written with torch's MultiheadAttention over the frames of each row
    x, memory = block.query_in(q), block.frame_in(f[rows])
    q_pad, f_pad = ~frame_mask(torch.tensor([5, 4, 2]), 5), ~frame_mask(lengths[rows], 30)
    for layer in block.layers:
        h = layer.self_norm(x)
        x = x + layer.self_attn(h, h, h, key_padding_mask=q_pad, need_weights=False)[0]
        x = x + layer.cross_attn(layer.cross_norm(x), memory, memory, key_padding_mask=f_pad, need_weights=False)[0]
        x = x + layer.ff(layer.ff_norm(x))
    assert torch.allclose(out, block.norm(x), atol=1e-5)
    separate, _ = block(q, torch.tensor([5, 4, 2]), f[rows], lengths[rows])
    assert torch.allclose(out, separate, atol=1e-6)


def test_causal_queries_do_not_see_the_future():
    block = fusion()
    q, f = torch.randn(1, 6, 24), torch.randn(1, 20, 40)
    changed = q.clone()
    changed[0, 4:] += 5.0
    a, _ = block(q, torch.tensor([6]), f, torch.tensor([20]), causal=True)
    b, _ = block(changed, torch.tensor([6]), f, torch.tensor([20]), causal=True)
    assert torch.allclose(a[0, :4], b[0, :4], atol=1e-5) and not torch.allclose(a[0, 4:], b[0, 4:])


def test_attention_maps_cover_real_frames_only():
    _, maps = fusion()(torch.randn(2, 4, 24), torch.tensor([4, 4]), torch.randn(2, 25, 40), torch.tensor([25, 10]),
                       return_attention=True)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 4, 25)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 4, 4), atol=1e-5) and maps[0][1, :, :, 10:].abs().max() == 0


def test_contrastive_loss_rewards_alignment_and_masks_duplicates():
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    scale = torch.tensor(20.0)
    aligned = contrastive_loss(text, text, scale, ["a", "b", "c", "d"])
    shuffled = contrastive_loss(text[[1, 0, 3, 2]], text, scale, ["a", "b", "c", "d"])
    assert aligned < 0.1 < shuffled
    # Items 0 and 1 share a transcript: confusing them must cost nothing once masked.
    dup = torch.stack([text[0], text[0], text[2], text[3]])
    assert contrastive_loss(dup, dup, scale, ["a", "a", "c", "d"]) < 0.1
    unmasked = contrastive_loss(dup, dup, scale, ["a", "b", "c", "d"])  # rows 0, 1: two equal maxima each
    assert unmasked == pytest.approx(2 * math.log(2) / 4, abs=1e-3)


def test_contrastive_loss_of_shares_against_the_whole_batch_is_the_batch_loss():
    """What each DDP rank computes (its utterances against every text and every gathered utterance),
    weighted by its share, adds up to the one-process loss and its gradient, duplicates masked alike."""
    torch.manual_seed(0)
    keys = ["a", "b", "a", "c", "d", "e", "b"]
    audio = torch.nn.functional.normalize(torch.randn(7, 8), dim=-1).requires_grad_()
    text = torch.nn.functional.normalize(torch.randn(7, 8), dim=-1).requires_grad_()
    scale = torch.tensor(10.0)
    whole = contrastive_loss(audio, text, scale, keys)
    (whole_audio, whole_text) = torch.autograd.grad(whole, (audio, text))
    shares = sum(len(pos) / 7 * contrastive_loss(audio[pos], text, scale, keys, pos, audio)
                 for pos in (torch.arange(0, 7, 2), torch.arange(1, 7, 2)))
    (share_audio, share_text) = torch.autograd.grad(shares, (audio, text))
    assert shares.item() == pytest.approx(whole.item(), rel=1e-6)
    assert torch.allclose(share_audio, whole_audio, atol=1e-6) and torch.allclose(share_text, whole_text, atol=1e-6)
    with pytest.raises(ValueError, match="shared_space.group"):
        contrastive_loss(audio[:3], text, scale, keys, torch.arange(3))


def test_command_candidates_are_drawn_over_the_global_batch_and_cut_per_rank():
    keys = ["a", "b", "c", "a", "d"]
    pairs, groups = sample_candidates(keys, 2, torch.Generator().manual_seed(3))
    whole = {(int(a), int(t)) for a, t in pairs}
    seen = set()
    for positions in ([0, 2, 4], [1, 3]):
        local, local_groups = local_candidates(pairs, groups, positions)
        assert local_groups.shape == (len(positions), 3)
        for row, pos in enumerate(positions):
            members = local[local_groups[row][local_groups[row] >= 0]]
            assert (members[:, 0] == row).all() and int(members[0, 1]) == pos  # its own text first
            seen |= {(pos, int(t)) for t in members[:, 1]}
    assert seen == whole


def test_contrastive_loss_is_computed_in_fp32_under_bf16_autocast():
    """Cosines times CLIP's scale of 100: in bf16 they would carry ~0.5 of rounding noise per logit."""
    torch.manual_seed(0)
    audio, text = (torch.nn.functional.normalize(torch.randn(32, 64), dim=-1) for _ in range(2))
    keys, scale = [str(i) for i in range(32)], torch.tensor(100.0)
    exact = contrastive_loss(audio, text, scale, keys)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = contrastive_loss(audio, text, scale, keys)
    assert under_autocast.dtype == torch.float32 and torch.allclose(under_autocast, exact, atol=1e-5)


def test_masked_mean_and_projection_are_unit_vectors():
    states = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert masked_mean(states, torch.tensor([2])).tolist() == [[2.0, 2.0]]
    space = SharedSpace(2, 3, 8)
    assert torch.allclose(space.audio(torch.randn(5, 2)).norm(dim=-1), torch.ones(5)) and space.scale().detach().item() == pytest.approx(1 / 0.07, rel=1e-4)


def test_text_tokenizer_trains_saves_and_splits_unseen_words(tmp_path):
    tok = TextTokenizer.train(PHRASES * 5, vocab_size=150)
    ids, lengths = tok.encode(["turn off the xylophone", "stop"])
    assert ids.shape == (2, int(lengths.max())) and tok.unk_id not in ids[0, : lengths[0]].tolist()
    tok.save(str(tmp_path))
    assert torch.equal(TextTokenizer.load(str(tmp_path)).encode(["turn off the xylophone"])[0], ids[:1, : lengths[0]])
    for bad in ["", "   ", "?!"]:
        with pytest.raises(TextTokenizerError, match="tokenises to nothing"):
            tok.encode([bad])


def test_text_tokenizer_is_the_same_in_every_process():
    """``tokenizers`` numbers word-internal pieces in hash-map order (different in each process); the
    trained vocabulary must not depend on it, or DDP ranks and reruns would tokenise differently."""
    import random
    import subprocess
    import sys

    rng = random.Random(0)
    words = ("turn on off the kitchen lights bedroom play next song stop music call five one two three "
             "set timer for minutes volume up down increase decrease heat temperature lamp").split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 6))) for _ in range(2000)]
    code = ("import json, sys; from speechtext.text_tokenizer import TextTokenizer; "
            "print(TextTokenizer.train(json.load(sys.stdin), 120).to_json())")
    runs = {subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), capture_output=True, text=True,
                           check=True).stdout for _ in range(4)}
    assert len(runs) == 1


def test_text_encoder_preset_and_pretrained_directory(tmp_path):
    tok = TextTokenizer.train(PHRASES, vocab_size=120)
    cfg = TextEncoderConfig(preset="tiny", overrides={"num_hidden_layers": 1})
    encoder = build_text_encoder(cfg, tok.vocab_size)
    ids, lengths = tok.encode(PHRASES[:2])
    states = encode_text(encoder, ids, lengths)
    assert states.shape == (2, ids.shape[1], 128) and cfg.hf_config["num_hidden_layers"] == 1
    # A BERT checkpoint directory, saved here, loads through from_pretrained with its own tokenizer.
    from transformers import BertTokenizerFast

    encoder.save_pretrained(tmp_path / "bert")
    vocab = {tok.backend.id_to_token(i): i for i in range(tok.vocab_size)}
    BertTokenizerFast(vocab=vocab).save_pretrained(tmp_path / "bert")
    loaded = build_text_encoder(TextEncoderConfig(pretrained=str(tmp_path / "bert")), tok.vocab_size)
    hf_tok = TextTokenizer.from_pretrained(str(tmp_path / "bert"))
    ids2, lengths2 = hf_tok.encode(PHRASES[:2])
    assert torch.equal(ids2, ids)
    encoder.eval(), loaded.eval()
    assert torch.allclose(encode_text(loaded, ids2, lengths2), encode_text(encoder, ids, lengths), atol=1e-5)


def test_intent_parts_are_the_label_parts_two_intents_share():
    names = ["increase_volume_kitchen", "decrease_volume_kitchen", "decrease_heat_none", "_silence_", "_unknown_"]
    assert intent_part_matrix(names).tolist() == [  # parts decrease, kitchen, volume; the rest are one intent's own
        [0, 1, 1], [1, 1, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert intent_part_matrix(["yes", "no"]).shape == (2, 0)


def test_a_part_moves_the_logits_of_every_intent_that_has_it_and_no_other():
    intents = ["decrease_volume_kitchen", "increase_volume_kitchen", "media_pause", "decrease_heat_none"]
    torch.manual_seed(0)
    block, head = fusion(), CommandHead(32, 24, intents, 40, intent_parts=True).eval()
    frames, lengths = torch.randn(2, 9, 40), torch.tensor([9, 5])
    before = head.intent_logits(block, frames, lengths)
    with torch.no_grad():  # parts: decrease, kitchen, volume
        head.intent_parts.weight[2] += 0.5
    moved = head.intent_logits(block, frames, lengths) - before
    assert torch.allclose(moved[:, 0], moved[:, 1]) and (moved[:, 0].abs() > 1e-3).all()
    assert torch.allclose(moved[:, 2:], torch.zeros(2, 2), atol=1e-6)
    assert not hasattr(CommandHead(32, 24, intents, 40), "intent_parts")  # off unless asked for
    assert "part_matrix" not in head.state_dict()  # rebuilt from the names: model dirs hold weights only
