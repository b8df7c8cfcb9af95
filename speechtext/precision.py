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
