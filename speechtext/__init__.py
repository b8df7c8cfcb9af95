"""speechtext: speech-text cross-modal learning toolkit."""
__version__ = "0.1.0"


def load_model(path: str, device: str = "cpu", backend: str = "torch"):
    """Load a speechtext model directory, a packed archive of one, an ONNX export, or import a Hugging
    Face wav2vec2 CTC checkpoint; see :func:`speechtext.inference.load_model`."""
    from .inference import load_model as _load

    return _load(path, device=device, backend=backend)


__all__ = ["load_model", "__version__"]
