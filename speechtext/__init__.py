"""speechtext: speech-text cross-modal learning toolkit."""
__version__ = "0.1.0"


def load_model(path: str, device: str = "cpu"):
    """Load a model directory written by speechtext (or import a Hugging Face wav2vec2 CTC directory)."""
    from .inference import load_model as _load

    return _load(path, device=device)


__all__ = ["load_model", "__version__"]
