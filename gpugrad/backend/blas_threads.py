"""Lend the compiled kernels' thread pool to NumPy's OpenBLAS, so the two stop fighting.

OpenBLAS runs a large product on worker threads of its own, which then spin for ~0.1 s
waiting for the next one. The kernels of `kernels/cpu` split their loops over a pool of their
own. On a machine with as many cores as threads, a kernel that runs right after a product (a
GELU after a Linear) found its helper's core taken by a spinning OpenBLAS worker and ran at
one thread's speed: 1.2 ms against 0.5 ms alone in the GPT benchmark's step.

OpenBLAS (0.3.27 and later) lets a program run its parallel work on the program's own threads
through `openblas_set_threads_callback_function`. With the kernels' pool installed there, one
set of threads serves both, as PyTorch's OpenMP pool serves its products and its elementwise
kernels. OpenBLAS computes the same things either way (its jobs and their split are its own;
only the threads that run them change), so products keep their bits.

This is process-wide: every OpenBLAS loaded in the process that has the function (NumPy's,
`numpy.libs/libscipy_openblas*`) then runs its parallel work on gpugrad's pool, also for
products that are not gpugrad's. `GPUGRAD_SHARE_BLAS_THREADS=0` leaves OpenBLAS alone, and so
does `GPUGRAD_NATIVE_KERNELS=0` (no pool at all); `share(False)` gives OpenBLAS its own
threads back.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from typing import Any

from . import native

__all__ = ["ENV_SWITCH", "gemm_address", "share", "shared"]

ENV_SWITCH = "GPUGRAD_SHARE_BLAS_THREADS"
# How long an idle helper of the pool spins before it sleeps while it serves OpenBLAS: about
# OpenBLAS's own wait (2^28 cycles), so a training step's products find it awake, as they would
# OpenBLAS's workers. On its own the pool spins for 200 µs.
SHARED_SPIN_US = 100_000
OWN_SPIN_US = 200
# The setter's names: NumPy's wheels prefix "scipy_" and suffix "64_" for their ILP64 build.
_SETTERS = (
    "scipy_openblas_set_threads_callback_function64_",
    "scipy_openblas_set_threads_callback_function",
    "openblas_set_threads_callback_function64_",
    "openblas_set_threads_callback_function",
)

# cblas_?gemm with 64-bit sizes (the ILP64 build NumPy's wheels ship), by dtype name.
_GEMMS = {
    "float32": ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
    "float64": ("scipy_cblas_dgemm64_", "cblas_dgemm64_"),
}

_lock = threading.Lock()
_state: dict[str, Any] = {"setters": [], "shared": False, "gemms": None}


def shared() -> bool:
    """Whether OpenBLAS now runs its parallel work on the kernels' pool."""
    return bool(_state["shared"])


def share(enable: bool = True) -> bool:
    """Install (or with False, remove) the kernels' pool as the threads of every OpenBLAS
    loaded in this process that supports it; returns whether it is installed afterwards.
    Call it while no product is running on another thread (OpenBLAS reads the setting at the
    start of each parallel call)."""
    lib = native.library()
    with _lock:
        if lib is None:
            return False
        if enable and not _state["setters"]:
            _state["setters"] = list(_callback_setters())
        callback = ctypes.cast(lib.gg_blas_threads, ctypes.c_void_p) if enable else None
        for setter in _state["setters"]:
            setter(callback)
        _state["shared"] = bool(enable and _state["setters"])
        lib.gg_pool_set_spin_us(SHARED_SPIN_US if _state["shared"] else OWN_SPIN_US)
        return _state["shared"]


def gemm_address(dtype_name: str) -> int | None:
    """The address of NumPy's OpenBLAS's cblas_sgemm ("float32") or cblas_dgemm ("float64")
    with 64-bit sizes, for kernels that call it per matrix; None where there is none."""
    gemms = _state["gemms"]
    if gemms is None:
        with _lock:
            if _state["gemms"] is None:
                _state["gemms"] = _find_gemms()
            gemms = _state["gemms"]
    return gemms.get(dtype_name)


def _find_gemms() -> dict[str, int]:
    """{dtype name: gemm address} from the first mapped OpenBLAS that has both ILP64 gemms."""
    for path in sorted(_loaded_openblas(), key=lambda p: "scipy_openblas64" not in p):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        found = {}
        for dtype_name, names in _GEMMS.items():
            function = next((getattr(library, n) for n in names if hasattr(library, n)), None)
            if function is not None:
                found[dtype_name] = ctypes.cast(function, ctypes.c_void_p).value
        if len(found) == len(_GEMMS):
            return found
    return {}


def share_by_default() -> None:
    """`share()` unless GPUGRAD_SHARE_BLAS_THREADS=0 (called once the kernels are loaded)."""
    if os.environ.get(ENV_SWITCH, "1").strip() != "0":
        share(True)


def _callback_setters() -> Iterator[Any]:
    """The callback setter of each OpenBLAS mapped into this process, where it has one."""
    for path in _loaded_openblas():
        try:
            library = ctypes.CDLL(path)  # already loaded: the same handle, no second copy
        except OSError:
            continue
        for name in _SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter.argtypes, setter.restype = (ctypes.c_void_p,), None
                yield setter
                break


def _loaded_openblas() -> list[str]:
    """Paths of the shared libraries with 'openblas' in their name that this process has
    mapped (Linux's /proc/self/maps; elsewhere none, and OpenBLAS keeps its threads)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.readlines()
    except OSError:
        return []
    paths = []
    for line in lines:
        path = line.split(maxsplit=5)[-1].strip() if line.count(" ") >= 5 else ""
        if "openblas" in os.path.basename(path).lower() and path not in paths:
            paths.append(path)
    return paths
