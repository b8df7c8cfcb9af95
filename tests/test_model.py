import torch

from speechtext.config import EncoderConfig, ModelConfig
from speechtext.models import SpeechTextModel, encode_audio, output_lengths
from conftest import TINY_ENCODER


def tiny_model(**encoder):
    cfg = ModelConfig(encoder=EncoderConfig(preset="tiny", overrides={**TINY_ENCODER, **encoder}))
    return SpeechTextModel(cfg, vocab_size=10)


def test_forward_returns_loss_and_stats_and_frame_lengths_match():
    torch.manual_seed(0)
    model = tiny_model()
    waves, lengths = torch.randn(2, 16000), torch.tensor([16000, 9000])
    batch = {"waveforms": waves, "lengths": lengths, "targets": torch.tensor([[1, 2, 3], [4, 5, 0]]),
             "target_lengths": torch.tensor([3, 2])}
    loss, stats = model(batch)
    assert loss.requires_grad and stats["utts"] == 2 and stats["loss"] == loss.item()
    frames, frame_lengths = model.encode(waves, lengths)
    assert frame_lengths.tolist() == output_lengths(model.audio_encoder, lengths).tolist()
    assert frames.shape[1] == frame_lengths.max()
    single, _ = model.eval().encode(waves[1:, :9000], lengths[1:])
    batched, _ = model.encode(waves, lengths)
    assert torch.allclose(single[0], batched[1, : single.shape[1]], atol=1e-4)


def test_group_norm_front_end_batches_exactly():
    torch.manual_seed(0)
    model = tiny_model(feat_extract_norm="group", do_stable_layer_norm=False).eval()
    waves, lengths = torch.randn(2, 16000), torch.tensor([16000, 7000])
    batched, _ = encode_audio(model.audio_encoder, waves, lengths)
    alone, n = encode_audio(model.audio_encoder, waves[1:, :7000], lengths[1:])
    assert torch.allclose(alone[0], batched[1, : n.item()], atol=1e-4)


def test_backbone_only_weights_load_into_a_model_with_heads():
    source = tiny_model()
    backbone = {k: v for k, v in source.state_dict().items() if k.startswith("audio_encoder.")}
    target = tiny_model()
    missing, unexpected = target.load_state_dict(backbone, strict=False)
    assert not unexpected and all(k.startswith("heads.") for k in missing)
    assert torch.equal(target.audio_encoder.feature_projection.projection.weight,
                       source.audio_encoder.feature_projection.projection.weight)
