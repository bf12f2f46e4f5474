"""`gg.accelerator`: PyTorch's device-neutral questions, answered for gpugrad's one accelerator.

Programs written against `torch.accelerator` (pytorch/examples' MNIST, for one) pick their device
with `is_available()` and `current_accelerator()`. gpugrad's only accelerator is CUDA (through
CuPy), so these ask `gg.cuda`.
"""

from __future__ import annotations

from . import cuda
from .backend import Device

__all__ = ["current_accelerator", "device_count", "is_available", "synchronize"]


def is_available() -> bool:
    """True when a CUDA GPU can be used (CuPy installed and a GPU present)."""
    return cuda.is_available()


def current_accelerator() -> Device | None:
    """The accelerator device (`cuda`) when one is available, else None, as PyTorch returns."""
    return Device("cuda", 0) if cuda.is_available() else None


def device_count() -> int:
    """How many accelerators are usable (CUDA GPUs)."""
    return cuda.device_count()


def synchronize() -> None:
    """Wait for all queued accelerator work (a no-op without a GPU)."""
    if cuda.is_available():
        cuda.synchronize()
