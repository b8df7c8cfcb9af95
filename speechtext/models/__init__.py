"""Model code: the shared audio backbone and the heads built on it."""
from .audio_encoder import PRESETS, build_audio_encoder, encode_audio, output_lengths
from .model import CTCHead, SpeechTextModel

__all__ = ["PRESETS", "build_audio_encoder", "encode_audio", "output_lengths", "CTCHead", "SpeechTextModel"]
