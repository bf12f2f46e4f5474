"""`gg.cuda`: is a GPU usable, how many, waiting for queued GPU work, and GPU memory in use.

CuPy runs every kernel on the *current* CUDA device, which is device 0 unless changed. Tensors
on `cuda:N` for N > 0 are computed with inside `with gg.cuda.device(N):` (as with
`cupy.cuda.Device(N)`); otherwise CuPy's own kernels refuse arrays of another device, and
gpugrad's fused kernels raise a DeviceError saying so.

Memory figures come from CuPy's memory pool, which gpugrad's arrays are allocated from: bytes
held by live arrays (`memory_allocated`), its peak, and bytes the pool keeps from the driver
(`memory_reserved`), as PyTorch's functions of the same names report.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import _args
from .backend import cuda_device_count, cuda_is_available, get_backend, set_cuda_seed

__all__ = [
    "device",
    "device_count",
    "empty_cache",
    "is_available",
    "manual_seed",
    "manual_seed_all",
    "max_memory_allocated",
    "memory_allocated",
    "memory_reserved",
    "reset_peak_memory_stats",
    "synchronize",
]


def is_available() -> bool:
    """True when CuPy is installed and a CUDA GPU can be used."""
    return cuda_is_available()


def manual_seed(seed: int) -> None:
    """Seed the GPUs' global random streams (PyTorch's `torch.cuda.manual_seed`), leaving the
    cpu stream alone. gpugrad seeds every GPU, not only the current one, so this is also
    `manual_seed_all`. Without a GPU it is accepted and does nothing, as in PyTorch."""
    set_cuda_seed(_args.seed("cuda.manual_seed", seed))


def manual_seed_all(seed: int) -> None:
    """Seed every GPU's global random stream (PyTorch's `torch.cuda.manual_seed_all`)."""
    set_cuda_seed(_args.seed("cuda.manual_seed_all", seed))


def device_count() -> int:
    """How many CUDA GPUs are usable (0 without CuPy or a GPU)."""
    return cuda_device_count()


@contextmanager
def device(index: int | str) -> Iterator[None]:
    """Make CUDA device `index` (an int, or "cuda:N") the current one inside the block, where
    work on tensors of `cuda:N` must run when N is not the current device."""
    backend = _cuda_backend(index if isinstance(index, str) else f"cuda:{int(index)}", "device")
    with backend.device_context():
        yield


def synchronize(device: str = "cuda") -> None:
    """Block until all queued work on a CUDA device is done."""
    get_backend(device).synchronize()


def _cuda_backend(device: str, what: str):
    backend = get_backend(device)
    if backend.device.type != "cuda":
        raise ValueError(f"gg.cuda.{what} takes a CUDA device, got '{backend.device}'")
    return backend


def memory_allocated(device: str = "cuda") -> int:
    """Bytes of GPU memory held by live arrays on `device`."""
    return _cuda_backend(device, "memory_allocated").memory_allocated()


def max_memory_allocated(device: str = "cuda") -> int:
    """The peak of `memory_allocated` since peak tracking began (the first call of this or of
    `reset_peak_memory_stats`) or the last reset: call `reset_peak_memory_stats()` before the
    work you want to measure."""
    return _cuda_backend(device, "max_memory_allocated").max_memory_allocated()


def reset_peak_memory_stats(device: str = "cuda") -> None:
    """Start `max_memory_allocated` over from the bytes in use now."""
    _cuda_backend(device, "reset_peak_memory_stats").reset_peak_memory_stats()


def memory_reserved(device: str = "cuda") -> int:
    """Bytes the memory pool holds from the driver on `device`: in use plus cached."""
    return _cuda_backend(device, "memory_reserved").memory_reserved()


def empty_cache(device: str = "cuda") -> None:
    """Return the pool's cached, unused GPU memory to the driver (live arrays stay)."""
    _cuda_backend(device, "empty_cache").empty_cache()
