import pytest
import torch
import torchaudio

from speechtext.config import ConfigError, EncoderConfig, ModelConfig
from speechtext.models import SpeechTextModel, build_audio_encoder, encode_audio, output_lengths
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


def mel_model():
    cfg = ModelConfig(encoder=EncoderConfig(preset="tiny", overrides=dict(TINY_ENCODER), frontend="mel"))
    return SpeechTextModel(cfg, vocab_size=10)


def test_mel_front_end_lengths_and_features():
    torch.manual_seed(0)
    model = mel_model()
    encoder = model.audio_encoder
    for n in (1040, 1359, 1360, 16000, 16321):  # 1040 samples: the shortest input (5 STFT frames)
        assert encoder.feature_extractor(torch.randn(1, n)).shape[-1] == output_lengths(encoder, torch.tensor([n])).item()
    wave = torch.randn(2, 8000)
    reference = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, center=False, n_mels=80,
                                                     norm=None, mel_scale="htk", power=2.0)(wave)
    assert torch.allclose(encoder.feature_extractor.log_mel(wave), torch.log(reference + 1e-4), atol=1e-3)
    wave[1, 5000:] = 0
    frames, lengths = model.eval().encode(wave, torch.tensor([8000, 5000]))
    assert frames.shape[1] == lengths.max() and lengths.tolist() == output_lengths(encoder, torch.tensor([8000, 5000])).tolist()
    alone, n = model.encode(wave[1:, :5000], torch.tensor([5000]))  # the mean is over the row's own frames
    assert torch.allclose(alone[0], frames[1, : n.item()], atol=1e-4)
    louder, _ = model.encode(wave[1:, :5000] * 3, torch.tensor([5000]))  # a gain is a constant in log-mel:
    assert torch.allclose(louder, alone, atol=1e-3)  # the per-band mean takes it out


def test_mel_front_end_saves_loads_strictly_and_refuses_pretrained(tmp_path):
    torch.manual_seed(0)
    model = mel_model()
    assert not any("dft" in k or "fbank" in k for k in model.state_dict())  # fixed: rebuilt, not stored
    again = SpeechTextModel(model.config, vocab_size=10)  # cfg now holds the resolved hf_config
    again.load_state_dict(model.state_dict(), strict=True)
    wave = torch.randn(1, 9000)
    assert torch.equal(model.eval().encode(wave, torch.tensor([9000]))[0], again.eval().encode(wave, torch.tensor([9000]))[0])
    with pytest.raises(ConfigError, match="trained on its own conv front end"):
        build_audio_encoder(EncoderConfig(pretrained=str(tmp_path), frontend="mel"))
    with pytest.raises(ConfigError, match="frontend: 'fbank' is not one of conv, mel"):
        build_audio_encoder(EncoderConfig(frontend="fbank"))
    with pytest.raises(ConfigError, match="mel_max_hz: 9000"):
        build_audio_encoder(EncoderConfig(frontend="mel", mel_max_hz=9000))
