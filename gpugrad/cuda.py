"""`gg.cuda`: is a GPU usable, how many, and waiting for queued GPU work."""

from __future__ import annotations

from .backend import cuda_device_count, cuda_is_available, get_backend

__all__ = ["device_count", "is_available", "synchronize"]


def is_available() -> bool:
    """True when CuPy is installed and a CUDA GPU can be used."""
    return cuda_is_available()


def device_count() -> int:
    """How many CUDA GPUs are usable (0 without CuPy or a GPU)."""
    return cuda_device_count()


def synchronize(device: str = "cuda") -> None:
    """Block until all queued work on a CUDA device is done."""
    get_backend(device).synchronize()
