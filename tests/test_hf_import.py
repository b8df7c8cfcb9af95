"""A Hugging Face Wav2Vec2ForCTC directory (made and saved here, randomly initialised) loads as a
speechtext model whose transcripts equal the transformers ASR pipeline's on the same audio."""
import json
import os

import pytest
import torch
from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                          Wav2Vec2Processor, pipeline)

import speechtext
from speechtext.audio import load_audio
from conftest import TINY_ENCODER


def save_hf_checkpoint(path, feat_extract_norm, do_normalize=True):
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate("ETAONISRHLDUCMGWFPY")}}
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "vocab.json"), "w") as handle:
        json.dump(vocab, handle)
    tokenizer = Wav2Vec2CTCTokenizer(os.path.join(path, "vocab.json"))
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=feat_extract_norm == "layer", do_normalize=do_normalize)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    stable = feat_extract_norm == "layer"
    config = Wav2Vec2Config(vocab_size=len(vocab), feat_extract_norm=feat_extract_norm, do_stable_layer_norm=stable,
                            conv_kernel=[10, 8, 4, 4], conv_stride=[5, 4, 4, 4], pad_token_id=0, **TINY_ENCODER)
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(path)


def clean(text):  # the pipeline leaves special tokens and double spaces in; speechtext drops them
    return " ".join(text.replace("</s>", "").replace("<s>", "").split())


@pytest.mark.parametrize("norm, do_normalize", [("group", True), ("layer", True), ("layer", False)])
def test_transcripts_equal_the_transformers_pipeline(tmp_path, speech_dir, norm, do_normalize):
    save_hf_checkpoint(str(tmp_path / "hf"), norm, do_normalize)
    wavs = [line.split()[1] for line in open(os.path.join(speech_dir, "wav.scp"))]
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path / "hf"), device="cpu")
    # Decoded arrays, not paths: the pipeline would need ffmpeg to read files itself.
    expected = [clean(asr({"raw": load_audio(w), "sampling_rate": 16000})["text"]) for w in wavs]
    model = speechtext.load_model(str(tmp_path / "hf"))
    got = [r.text for r in model.transcribe(wavs, precision="fp32")]
    assert any(expected) and got == expected


def test_imported_model_saves_and_reloads_without_the_source(tmp_path, speech_dir):
    from speechtext.checkpoint import save_model_dir

    save_hf_checkpoint(str(tmp_path / "hf"), "layer")
    model = speechtext.load_model(str(tmp_path / "hf"))
    save_model_dir(model.model, model.tokenizer, model.config, str(tmp_path / "ours"))
    os.rename(tmp_path / "hf", tmp_path / "gone")
    wavs = [line.split()[1] for line in open(os.path.join(speech_dir, "wav.scp"))][:4]
    again = speechtext.load_model(str(tmp_path / "ours"))
    assert [r.text for r in again.transcribe(wavs, precision="fp32")] == [r.text for r in model.transcribe(wavs, precision="fp32")]
