"""Where work runs by default: the GPU when there is one, else the CPU."""
from __future__ import annotations

import torch


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def has_native_bf16(device: torch.device | int | None = None) -> bool:
    """Whether a CUDA GPU computes in bfloat16 natively (compute capability 8 and up: A100, L4,
    H100...). Older ones (a Colab T4) only emulate it, slowly, though
    ``torch.cuda.is_bf16_supported()`` answers yes for them: they train in fp16 with a gradient scaler."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8


def amp_dtype(device: torch.device | int | None = None) -> torch.dtype:
    """The mixed-precision type training uses on a GPU: bfloat16 where it is native, else float16."""
    return torch.bfloat16 if has_native_bf16(device) else torch.float16
