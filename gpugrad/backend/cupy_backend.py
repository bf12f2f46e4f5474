"""The CuPy backend: arrays in GPU memory, the `cuda:N` devices.

This module is imported only when a CUDA device is first asked for, so gpugrad works without
CuPy installed.
"""

from __future__ import annotations

import threading
from typing import Any

import cupy
import cupyx
import cupyx.scipy.special
import numpy as np

from ..errors import CheckpointError
from . import special_math
from .base import Backend
from .cupy_kernels import CupyKernels
from .device import Device
from .fused_primitives import FusedPrimitives


class _PeakMemory:
    """Peak bytes in use per device: CuPy's pool counts bytes in use but keeps no peak, so
    allocations go through this wrapper of the pool's malloc, which notes the count after each.
    (The count only grows at an allocation, so frees need no hook.)"""

    def __init__(self, pool: cupy.cuda.MemoryPool) -> None:
        self.pool = pool
        self.peak: dict[int, int] = {}

    def malloc(self, size: int) -> cupy.cuda.MemoryPointer:
        memory = self.pool.malloc(size)
        used = self.pool.used_bytes()
        device = memory.device_id
        if used > self.peak.get(device, 0):
            self.peak[device] = used
        return memory


_peak_memory: list[_PeakMemory | None] = [None]
_peak_lock = threading.Lock()


def _track_peak_memory() -> _PeakMemory | None:
    """Install the peak-tracking allocator, once. Only on demand (the first call of
    max_memory_allocated or reset_peak_memory_stats): it puts a Python call in every CuPy
    allocation of the process, and in older CuPy `used_bytes` walks the pool. An allocator the
    user set is left alone (the peak then stays unknown)."""
    with _peak_lock:
        if _peak_memory[0] is None:
            pool = cupy.get_default_memory_pool()
            if cupy.cuda.get_allocator() == pool.malloc:
                tracker = _PeakMemory(pool)
                try:
                    cupy.cuda.set_allocator(tracker.malloc)
                except ValueError:  # inside cupy.cuda.using_allocator: not ours to replace
                    return None
                _peak_memory[0] = tracker
        return _peak_memory[0]


class StockCupyBackend(Backend):
    """Backend for `device="cuda:N"` on stock CuPy alone: every primitive is its NumPy-twin
    formula run by CuPy's own kernels. Chosen with GPUGRAD_FUSED_KERNELS=0 (to tell a fused
    kernel's fault from the rest, or to time what the fusion gains); `CupyBackend` is the
    default."""

    # The optimizer twins' updates in one block: cache-sized blocks pay on a CPU, but on a GPU
    # each block would cost a kernel launch per pass.
    optimizer_block = 1 << 62

    def __init__(self, index: int) -> None:
        super().__init__(cupy, Device("cuda", index))
        self.index = index
        self.rng = self.make_rng(None)

    def asarray(self, data: Any, dtype: Any = None, copy: bool | None = None) -> cupy.ndarray:
        with cupy.cuda.Device(self.index):
            if copy:
                return cupy.array(data, dtype=dtype, copy=True)
            return cupy.asarray(data, dtype=dtype)

    def to_numpy(self, array: cupy.ndarray) -> np.ndarray:
        return cupy.asnumpy(array)

    # Philox4x32-10 rather than default_rng's XORWOW: seeding XORWOW runs a long skip-ahead
    # per thread state, while a Philox state is just its key and counter, so a seed (or a new
    # gg.Generator) costs one short kernel.
    def make_rng(self, seed: int | None) -> Any:
        with cupy.cuda.Device(self.index):
            return cupy.random.Generator(cupy.random.Philox4x3210(seed))

    def rng_state(self, rng: Any = None) -> dict:
        """The generator's cuRAND states copied to the host (CuPy has no public state API;
        its BitGenerator keeps them in the int8 device array `_state`)."""
        bits = (self.rng if rng is None else rng).bit_generator
        with cupy.cuda.Device(self.index):
            states = cupy.asnumpy(bits._state).view(np.uint8)
        return {"bit_generator": type(bits).__name__, "states": states}

    def set_rng_state(self, state: dict, rng: Any = None) -> None:
        bits = (self.rng if rng is None else rng).bit_generator
        states = np.asarray(state["states"], dtype=np.uint8)
        if state.get("bit_generator") != type(bits).__name__ or states.size != bits._state.size:
            raise CheckpointError(
                f"a {state.get('bit_generator')} state of {states.size} bytes does not fit "
                f"this device's {type(bits).__name__} generator ({bits._state.size} bytes)"
            )
        with cupy.cuda.Device(self.index):
            bits._state[...] = cupy.asarray(states.view(np.int8))

    def random_uniform(self, shape: tuple[int, ...], dtype: Any, rng: Any = None) -> cupy.ndarray:
        rng = self.rng if rng is None else rng
        with cupy.cuda.Device(self.index):
            if np.dtype(dtype) in (np.float32, np.float64):
                return rng.random(shape, dtype=dtype)
            return rng.random(shape).astype(dtype)

    def random_normal(self, shape: tuple[int, ...], dtype: Any, rng: Any = None) -> cupy.ndarray:
        rng = self.rng if rng is None else rng
        with cupy.cuda.Device(self.index):
            if np.dtype(dtype) in (np.float32, np.float64):
                return rng.standard_normal(shape, dtype=dtype)
            return rng.standard_normal(shape).astype(dtype)

    def random_integers(
        self, low: int, high: int, shape: tuple[int, ...], dtype: Any, rng: Any = None
    ) -> cupy.ndarray:
        rng = self.rng if rng is None else rng
        with cupy.cuda.Device(self.index):
            return rng.integers(low, high, size=shape, dtype=dtype)

    def pin(self, array: np.ndarray) -> np.ndarray:
        """A copy of `array` in page-locked host memory, which the GPU copies from directly
        (pageable memory goes through a driver bounce buffer)."""
        pinned = cupyx.empty_pinned(array.shape, dtype=array.dtype)
        pinned[...] = array
        return pinned

    def scatter_add(self, target: cupy.ndarray, index: Any, values: cupy.ndarray) -> None:
        if target.dtype == np.int64:  # atomicAdd has no int64 form; two's complement sums
            target, values = target.view(np.uint64), values.view(np.uint64)  # agree bit for bit
        cupyx.scatter_add(target, index, values)

    def erf(self, x: cupy.ndarray) -> cupy.ndarray:
        """The error function: CuPy's (the device's erf/erff), with special_math's dtypes."""
        with cupy.cuda.Device(self.index):
            return special_math.via_library(self, cupyx.scipy.special.erf, x)

    def erfc(self, x: cupy.ndarray) -> cupy.ndarray:
        """1 - erf(x): CuPy's (the device's erfc), with special_math's dtypes."""
        with cupy.cuda.Device(self.index):
            return special_math.via_library(self, cupyx.scipy.special.erfc, x)

    def device_context(self) -> cupy.cuda.Device:
        """A context manager that makes this backend's GPU the current CUDA device."""
        return cupy.cuda.Device(self.index)

    def memory_allocated(self) -> int:
        """Bytes of GPU memory held by live arrays on this device (CuPy's pool, in use)."""
        with cupy.cuda.Device(self.index):
            return int(cupy.get_default_memory_pool().used_bytes())

    def max_memory_allocated(self) -> int:
        """The most bytes `memory_allocated` has reached since peak tracking began: at the
        first call of this or `reset_peak_memory_stats` (call that before the work to
        measure). Without tracking (another allocator replaced CuPy's pool), the bytes now."""
        tracker = _track_peak_memory()
        now = self.memory_allocated()
        if tracker is None:
            return now
        peak = tracker.peak.setdefault(self.index, now)
        return max(peak, now)

    def reset_peak_memory_stats(self) -> None:
        """Start the peak over from the bytes in use now."""
        tracker = _track_peak_memory()
        if tracker is not None:
            tracker.peak[self.index] = self.memory_allocated()

    def empty_cache(self) -> None:
        """Give the pool's cached, unused blocks back to the driver."""
        with cupy.cuda.Device(self.index):
            cupy.get_default_memory_pool().free_all_blocks()

    def memory_reserved(self) -> int:
        """Bytes of GPU memory CuPy's pool holds on this device, in use or cached for reuse."""
        with cupy.cuda.Device(self.index):
            return int(cupy.get_default_memory_pool().total_bytes())

    def synchronize(self) -> None:
        with cupy.cuda.Device(self.index):
            cupy.cuda.get_current_stream().synchronize()


class CupyBackend(FusedPrimitives, StockCupyBackend):
    """Backend for `device="cuda:N"`, built on CuPy; arrays are allocated on GPU N.

    Activations, their backward, bias + activation, softmax cross-entropy and the optimizer
    updates run as the fused kernels of `kernels/` (see `FusedPrimitives`); everything else is
    stock CuPy.
    """

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.kernels = CupyKernels(index)

    def launch_kernel(self, name: str, n: int, args: tuple) -> None:
        self.kernels.launch(name, n, args)
