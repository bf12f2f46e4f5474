"""Lend the compiled kernels' thread pool to NumPy's OpenBLAS, so the two stop fighting.

OpenBLAS runs a large product on worker threads of its own, which then spin for ~0.1 s
waiting for the next one. The kernels of `kernels/cpu` split their loops over a pool of their
own. On a machine with as many cores as threads, a kernel that runs right after a product (a
GELU after a Linear) found its helper's core taken by a spinning OpenBLAS worker and ran at
one thread's speed: 1.2 ms against 0.5 ms alone in the GPT benchmark's step.

OpenBLAS (0.3.27 and later, pthreads builds) lets a program run its parallel work on the
program's own threads through `openblas_set_threads_callback_function`. With the kernels' pool
installed there (`kernels/cpu/blas_threads.cpp`), one set of threads serves both, as
PyTorch's OpenMP pool serves its products and its elementwise kernels. OpenBLAS splits the
work as before and only the threads that run the parts change, so products keep their bits.
Calls the pool cannot take at once (another Python thread holds it, it has fewer threads than
OpenBLAS's parts) go to OpenBLAS's own workers, as without the callback.

This is process-wide: NumPy's OpenBLAS then runs every product's parallel parts on gpugrad's
pool, also for products that are not gpugrad's. `GPUGRAD_SHARE_BLAS_THREADS=0` leaves it
alone, and so does `GPUGRAD_NATIVE_KERNELS=0` (no pool at all); `share(False)` gives OpenBLAS
its own threads back. Only the OpenBLAS that NumPy itself links is touched, found through
NumPy's own extension module, and only where it is the scipy-openblas build of NumPy's wheels
(other builds keep their own threads).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import re
import sys
import threading
from typing import Any

from . import native

__all__ = ["ENV_SWITCH", "gemm_address", "share", "shared"]

ENV_SWITCH = "GPUGRAD_SHARE_BLAS_THREADS"
# How long an idle helper of the pool spins before it sleeps while it serves OpenBLAS: about
# OpenBLAS's own wait (2^28 cycles), so a training step's products find it awake, as they would
# OpenBLAS's workers. On its own the pool spins for 200 µs.
SHARED_SPIN_US = 100_000
OWN_SPIN_US = 200
# OpenBLAS's public functions as NumPy's wheels name them (scipy-openblas: "scipy_" prefix,
# "64_" suffix for the ILP64 build). Only those builds are known to suit the callback: one
# built with CONSISTENT_FPCSR (an option some other builds take) would run the callback's jobs
# with a floating-point control word it never set.
_PUBLIC_NAMES = ("scipy_{}64_", "scipy_{}")
# cblas_?gemm with 64-bit sizes, by dtype name (ILP64 builds only: their names say so).
_GEMMS = {
    "float32": ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
    "float64": ("scipy_cblas_dgemm64_", "cblas_dgemm64_"),
}
_PTHREADS = 1  # openblas_get_parallel(): OpenBLAS's own pthreads workers

_lock = threading.Lock()
_state: dict[str, Any] = {"numpy_blas": None, "attached": None, "shared": False, "gemms": {}}


def shared() -> bool:
    """Whether NumPy's OpenBLAS now runs its parallel work on the kernels' pool."""
    return bool(_state["shared"])


def share(enable: bool = True) -> bool:
    """Install (or with False, remove) the kernels' pool as the threads of NumPy's OpenBLAS;
    returns whether it is installed afterwards: False where NumPy's BLAS cannot take it, or
    where the pool cannot take every parallel call OpenBLAS makes with its present thread
    count (fewer threads than OpenBLAS's, or OpenBLAS's per-thread state too small for both;
    OpenBLAS then keeps its own threads). Best called while no product runs on another thread:
    one that has started finishes on the threads it started with."""
    lib = native.library()
    with _lock:
        if lib is None or not _attach(lib):
            _state["shared"] = False
            return False
        lib.gg_blas_share.restype = ctypes.c_int
        _state["shared"] = bool(lib.gg_blas_share(int(bool(enable))))
        lib.gg_pool_set_spin_us(SHARED_SPIN_US if _state["shared"] else OWN_SPIN_US)
        return _state["shared"]


def share_by_default() -> None:
    """`share()` unless GPUGRAD_SHARE_BLAS_THREADS=0 (called once the kernels are loaded)."""
    if os.environ.get(ENV_SWITCH, "1").strip() != "0":
        share(True)


def gemm_address(dtype_name: str) -> int | None:
    """The address of NumPy's OpenBLAS's cblas_sgemm ("float32") or cblas_dgemm ("float64")
    with 64-bit sizes, for kernels that make NumPy's own per-matrix calls; None where NumPy's
    BLAS has none. Looked up once per dtype (batched products ask on every call)."""
    gemms = _state["gemms"]
    if dtype_name not in gemms:
        blas = _numpy_blas()
        names = _GEMMS.get(dtype_name, ()) if blas is not None else ()
        function = next((getattr(blas, n) for n in names if hasattr(blas, n)), None)
        gemms[dtype_name] = (
            None if function is None else ctypes.cast(function, ctypes.c_void_p).value
        )
    return gemms[dtype_name]


def _attach(lib: ctypes.CDLL) -> bool:
    """Whether the kernels know NumPy's OpenBLAS's parts the callback needs, handing them over
    on the first call; False where one is missing (not an OpenBLAS, too old, not a pthreads
    build, not NumPy's wheels' build)."""
    if _state["attached"] is None:
        parts = _callback_parts()
        if parts is not None:
            setter, post, wait, workers, threads, slots = parts
            addresses = [ctypes.cast(f, ctypes.c_void_p) for f in (setter, post, wait)]
            lib.gg_blas_attach(
                *addresses, ctypes.addressof(workers), ctypes.addressof(threads), slots
            )
        _state["attached"] = parts is not None
    return bool(_state["attached"])


def _callback_parts() -> tuple[Any, ...] | None:
    """(callback setter, exec_blas_async, exec_blas_async_wait, blas_num_threads,
    blas_cpu_number, MAX_CPU_NUMBER) of NumPy's OpenBLAS, or None where any is missing."""
    blas = _numpy_blas()
    if blas is None or not sys.platform.startswith("linux"):
        return None
    setter = _public(blas, "openblas_set_threads_callback_function")
    parallel = _public(blas, "openblas_get_parallel")
    config = _public(blas, "openblas_get_config")
    post = getattr(blas, "exec_blas_async", None)
    wait = getattr(blas, "exec_blas_async_wait", None)
    if None in (setter, parallel, config, post, wait):
        return None
    parallel.restype, config.restype = ctypes.c_int, ctypes.c_char_p
    if parallel() != _PTHREADS:
        return None
    slots = re.search(rb"MAX_THREADS=(\d+)", config() or b"")
    if slots is None:
        return None
    try:
        workers = ctypes.c_int.in_dll(blas, "blas_num_threads")
        threads = ctypes.c_int.in_dll(blas, "blas_cpu_number")
    except ValueError:
        return None
    return setter, post, wait, workers, threads, int(slots.group(1))


def _public(blas: ctypes.CDLL, name: str) -> Any:
    """OpenBLAS's function `name` under whichever of its public names this build uses."""
    for pattern in _PUBLIC_NAMES:
        function = getattr(blas, pattern.format(name), None)
        if function is not None:
            return function
    return None


def _numpy_blas() -> ctypes.CDLL | None:
    """A handle whose symbols resolve as NumPy's own extension module's do (the extension
    and the libraries it links, NumPy's BLAS among them); None where it cannot be opened."""
    if _state["numpy_blas"] is None:
        _state["numpy_blas"] = False
        for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
            try:
                path = importlib.import_module(name).__file__
                _state["numpy_blas"] = ctypes.CDLL(path) if path else False
            except (ImportError, OSError):
                continue
            break
    return _state["numpy_blas"] or None
