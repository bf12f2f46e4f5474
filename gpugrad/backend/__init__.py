"""Backends and devices: the only place that knows which array library holds a tensor's data.

`get_backend(device)` returns the backend for a device, creating it on first use. The CUDA
backend (with the fused kernels of `kernels/`; stock CuPy alone when the environment variable
GPUGRAD_FUSED_KERNELS is 0) is imported lazily, and asking for it where CuPy or a GPU is
missing raises one clear `BackendUnavailableError` saying what to install or that no GPU was
found.

Where NumPy and CuPy differ (what raises, warns, copies, or in which order), gpugrad's own
rule and the code and test behind it are listed in RULES.md next to this file.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import BackendUnavailableError
from .base import ARRAY_FUNCTIONS, Backend
from .device import Device, device
from .numpy_backend import NumpyBackend

__all__ = [
    "ARRAY_FUNCTIONS",
    "Backend",
    "Device",
    "NumpyBackend",
    "cuda_device_count",
    "cuda_info",
    "cuda_is_available",
    "device",
    "get_backend",
    "loaded_backends",
    "set_cuda_seed",
    "set_seed",
]

CPU = NumpyBackend()
_backends: dict[Device, Backend] = {CPU.device: CPU}

INSTALL_HINT = 'pip install "gpugrad[cuda12]" (CUDA 12) or pip install "gpugrad[cuda13]" (CUDA 13)'


def _import_cupy() -> Any:
    """Import CuPy, or return None when it is not installed."""
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def cuda_is_available() -> bool:
    """True when CuPy is installed and can reach at least one GPU."""
    cupy = _import_cupy()
    # Without a driver, CuPy imports fine and only fails at the first allocation, so ask it.
    return cupy is not None and bool(cupy.is_available())


def cuda_device_count() -> int:
    """The number of CUDA GPUs CuPy can use (0 without CuPy or a GPU)."""
    if not cuda_is_available():
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


def cuda_info() -> dict[str, Any]:
    """What the CUDA side has: CuPy's version, the CUDA runtime and driver, the GPUs found."""
    cupy = _import_cupy()
    if cupy is None:
        return {"cupy": None, "available": False, "install": INSTALL_HINT}
    info: dict[str, Any] = {"cupy": cupy.__version__, "available": cuda_is_available()}
    if not info["available"]:
        return info
    runtime = cupy.cuda.runtime
    info["runtime"] = runtime.runtimeGetVersion()
    info["driver"] = runtime.driverGetVersion()
    info["gpus"] = []
    for i in range(runtime.getDeviceCount()):
        props = runtime.getDeviceProperties(i)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        info["gpus"].append(
            {"index": i, "name": name, "memory_gib": props["totalGlobalMem"] / 2**30,
             "compute_capability": f"{props['major']}.{props['minor']}"}
        )  # fmt: skip
    return info


def _make_cuda_backend(dev: Device) -> Backend:
    if _import_cupy() is None:
        raise BackendUnavailableError(
            f"device '{dev}' needs CuPy, which is not installed; install it with {INSTALL_HINT}"
        )
    if not cuda_is_available():
        raise BackendUnavailableError(
            f"device '{dev}' was requested, but CuPy found no usable CUDA GPU "
            "(no GPU, or no NVIDIA driver); use device='cpu'"
        )
    count = cuda_device_count()
    if dev.index >= count:
        raise BackendUnavailableError(
            f"device '{dev}' was requested, but only {count} CUDA GPU(s) were found "
            f"(valid: {', '.join(f'cuda:{i}' for i in range(count))})"
        )
    from .cupy_backend import CupyBackend, StockCupyBackend

    if os.environ.get("GPUGRAD_FUSED_KERNELS", "1").strip() == "0":
        return StockCupyBackend(dev.index)
    return CupyBackend(dev.index)


def get_backend(spec: str | Device | None = None) -> Backend:
    """The backend that holds arrays for a device, created on first use."""
    dev = device(spec)
    backend = _backends.get(dev)
    if backend is None:
        backend = _make_cuda_backend(dev)
        seed = _cuda_seed[0] if _cuda_seed[0] is not None else _seed[0]
        if seed is not None:
            backend.seed(seed)
        _backends[dev] = backend
    return backend


def loaded_backends() -> list[Backend]:
    """The backends created so far (cpu always; cuda ones once used)."""
    return list(_backends.values())


_seed: list[int | None] = [None]
_cuda_seed: list[int | None] = [None]  # set by gg.cuda.manual_seed until the next set_seed


def set_seed(seed: int) -> None:
    """Seed every backend's random generator, now and for backends created later."""
    _seed[0], _cuda_seed[0] = seed, None
    for backend in _backends.values():
        backend.seed(seed)


def set_cuda_seed(seed: int) -> None:
    """Seed the CUDA backends' generators only, now and for those created later; the cpu
    stream goes on undisturbed. Without a GPU nothing draws from it, and that is no error."""
    _cuda_seed[0] = seed
    for dev, backend in _backends.items():
        if dev.type == "cuda":
            backend.seed(seed)
