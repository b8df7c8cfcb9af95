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
    own kernels do not. Used by fp32 inference where :func:`onednn_linear_preferred` says so."""

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


def cpu_vendor() -> str:
    """The CPU's vendor string (``AuthenticAMD``, ``GenuineIntel``; "" where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def onednn_linear_preferred() -> bool:
    """Whether fp32 inference on the CPU runs its linear layers through oneDNN (:class:`OneDNNLinear`):
    on AMD CPUs whose PyTorch kernels use AVX-512, where MKL's GEMM runs below that speed and oneDNN's
    measured 1.15-2.1x faster (``benchmarks/transcribe_vs_hf.py --systems torch-fp32,torch-mkl``).
    ``SPEECHTEXT_CPU_GEMM=mkl`` or ``onednn`` in the environment decides instead.

    A fixed rule of the machine, not a timing: the two GEMMs sum in different orders, so the choice
    moves the last bits of every result, and a measurement near its threshold (AVX2 CPUs, where both
    run alike) chose differently from one process to the next -- a resumed synthesis run then
    aligned its data with other numbers than the run it continued."""
    import os

    choice = os.environ.get("SPEECHTEXT_CPU_GEMM", "auto")
    if choice not in ("auto", "mkl", "onednn"):
        raise ValueError(f"SPEECHTEXT_CPU_GEMM must be auto, mkl or onednn, not {choice!r}")
    if not torch.backends.mkldnn.is_available():
        return False
    if choice != "auto":
        return choice == "onednn"
    return cpu_vendor() == "AuthenticAMD" and torch.backends.cpu.get_cpu_capability() == "AVX512"
