"""Which reduced precision a device runs natively, shared by training (``train.amp``) and
inference (``precision``): bf16 is chosen only where the hardware has it. On a CPU without native
bf16 (AVX2 only) autocast emulates it, about 16x slower than fp32, so ``auto`` must not pick it there.
"""
from __future__ import annotations

import torch


def bf16_supported(device: torch.device) -> bool:
    """True on GPUs with bf16 (Ampere and later) and on CPUs with native bf16 (avx512_bf16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


# Below this many rows the conversions to and from oneDNN's layout cost more than MKL's GEMM saves
# (1-64 rows: 0.1-0.7x of MKL's speed on an AMD EPYC; 128 and more rows: 1.0-2.2x).
ONEDNN_MIN_ROWS = 128


class OneDNNLinear(torch.overrides.TorchFunctionMode):
    """Inside this mode, fp32 ``F.linear`` of at least ``ONEDNN_MIN_ROWS`` rows without autograd runs
    through oneDNN (``mkldnn_linear``) instead of MKL, each weight converted once and kept while it is
    unchanged. PyTorch's CPU GEMM is MKL's, which runs below its AVX-512 speed on AMD CPUs; oneDNN's
    own kernels do not. Used by inference where :func:`onednn_linear_is_faster` measured it faster."""

    _packed: dict = {}  # id(weight) -> (weakref to weight, its version, oneDNN weight, oneDNN bias)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear and not torch.is_grad_enabled():
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if (x.dtype == weight.dtype == torch.float32 and x.device.type == "cpu" and x.dim() >= 2
                    and x.numel() // x.shape[-1] >= ONEDNN_MIN_ROWS and not x.is_mkldnn):
                packed_weight, packed_bias = self._pack(weight, bias)
                return torch._C._nn.mkldnn_linear(x.contiguous().to_mkldnn(), packed_weight, packed_bias).to_dense()
        return func(*args, **kwargs)

    @classmethod
    def _pack(cls, weight: torch.Tensor, bias: torch.Tensor | None):
        import weakref

        entry = cls._packed.get(id(weight))
        if entry is None or entry[0]() is not weight or entry[1] != weight._version:
            bias = bias if bias is not None else weight.new_zeros(weight.shape[0])
            entry = (weakref.ref(weight, lambda _, key=id(weight): cls._packed.pop(key, None)), weight._version,
                     weight.detach().to_mkldnn(), bias.detach().to_mkldnn())
            cls._packed[id(weight)] = entry
        return entry[2], entry[3]


_onednn_faster: dict[int, bool] = {}


def onednn_linear_is_faster() -> bool:
    """Whether oneDNN's fp32 GEMM beats PyTorch's (MKL) on this CPU with the current thread count, by
    at least 10 %: measured once per thread count on a wav2vec2-base-sized projection (~50 ms).
    ``SPEECHTEXT_CPU_GEMM=mkl`` or ``onednn`` in the environment decides instead of the measurement."""
    import os
    import time

    choice = os.environ.get("SPEECHTEXT_CPU_GEMM", "auto")
    if choice not in ("auto", "mkl", "onednn"):
        raise ValueError(f"SPEECHTEXT_CPU_GEMM must be auto, mkl or onednn, not {choice!r}")
    if choice != "auto":
        return choice == "onednn" and torch.backends.mkldnn.is_available()
    threads = torch.get_num_threads()
    if threads not in _onednn_faster:
        faster = False
        if torch.backends.mkldnn.is_available():
            x, weight, bias = torch.randn(256, 768), torch.randn(768, 768), torch.randn(768)
            packed = (weight.to_mkldnn(), bias.to_mkldnn())

            def best(run) -> float:
                times = []
                for _ in range(7):
                    start = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - start)
                return min(times[2:])

            with torch.inference_mode():
                mkl = best(lambda: torch.nn.functional.linear(x, weight, bias))
                onednn = best(lambda: torch._C._nn.mkldnn_linear(x.to_mkldnn(), *packed).to_dense())
            faster = onednn < 0.9 * mkl
        _onednn_faster[threads] = faster
    return _onednn_faster[threads]
