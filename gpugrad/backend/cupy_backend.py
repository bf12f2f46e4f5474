"""The CuPy backend: arrays in GPU memory, the `cuda:N` devices.

This module is imported only when a CUDA device is first asked for, so gpugrad works without
CuPy installed.
"""

from __future__ import annotations

from typing import Any

import cupy
import cupyx
import numpy as np

from .base import Backend
from .device import Device


class CupyBackend(Backend):
    """Backend for `device="cuda:N"`, built on CuPy; arrays are allocated on GPU N."""

    def __init__(self, index: int) -> None:
        super().__init__(cupy, Device("cuda", index))
        self.index = index
        with cupy.cuda.Device(index):
            self.rng = cupy.random.default_rng()

    def asarray(self, data: Any, dtype: Any = None, copy: bool | None = None) -> cupy.ndarray:
        with cupy.cuda.Device(self.index):
            if copy:
                return cupy.array(data, dtype=dtype, copy=True)
            return cupy.asarray(data, dtype=dtype)

    def to_numpy(self, array: cupy.ndarray) -> np.ndarray:
        return cupy.asnumpy(array)

    def seed(self, seed: int) -> None:
        with cupy.cuda.Device(self.index):
            self.rng = cupy.random.default_rng(seed)

    def random_uniform(self, shape: tuple[int, ...], dtype: Any) -> cupy.ndarray:
        with cupy.cuda.Device(self.index):
            if np.dtype(dtype) in (np.float32, np.float64):
                return self.rng.random(shape, dtype=dtype)
            return self.rng.random(shape).astype(dtype)

    def random_normal(self, shape: tuple[int, ...], dtype: Any) -> cupy.ndarray:
        with cupy.cuda.Device(self.index):
            if np.dtype(dtype) in (np.float32, np.float64):
                return self.rng.standard_normal(shape, dtype=dtype)
            return self.rng.standard_normal(shape).astype(dtype)

    def random_integers(
        self, low: int, high: int, shape: tuple[int, ...], dtype: Any
    ) -> cupy.ndarray:
        with cupy.cuda.Device(self.index):
            return self.rng.integers(low, high, size=shape, dtype=dtype)

    def scatter_add(self, target: cupy.ndarray, index: Any, values: cupy.ndarray) -> None:
        cupyx.scatter_add(target, index, values)

    def synchronize(self) -> None:
        with cupy.cuda.Device(self.index):
            cupy.cuda.get_current_stream().synchronize()
