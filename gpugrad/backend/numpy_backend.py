"""The NumPy backend: arrays in host memory, the `cpu` device."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import cpu_kernels, host_memory, special_math
from .base import Backend
from .device import Device
from .optimizer_math import adam_bias_corrections

_BLAS_FLOATS = (np.dtype("float32"), np.dtype("float64"))
# ndarray.max goes through a Python wrapper (numpy._core._methods) on every call.
_maximum_reduce = np.maximum.reduce


@functools.lru_cache(maxsize=64)
def _ones(size: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of ones for `sum_along`'s products, kept rather than made each call
    (a loss or layer norm asks for the same length every step)."""
    ones = np.ones(size, dtype=dtype)
    ones.flags.writeable = False
    return ones


class NumpyBackend(Backend):
    """Backend for `device="cpu"`, built on NumPy."""

    # Sequential runs Linear + ReLU/Sigmoid/Tanh as one node here as on a GPU: one node fewer
    # per layer, and the bias and the activation applied in place on the product.
    fuses_bias_activation = True

    def __init__(self) -> None:
        super().__init__(np, Device("cpu"))
        self.rng = self.make_rng(None)
        # Whether malloc keeps freed memory for the next step (host_memory.py), for reports.
        self.malloc_tuned = host_memory.TUNED

    def asarray(self, data: Any, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy:
            return np.array(data, dtype=dtype, copy=True)
        return np.asarray(data, dtype=dtype)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return array

    def make_rng(self, seed: int | None) -> np.random.Generator:
        return np.random.default_rng(seed)

    def rng_state(self, rng: np.random.Generator | None = None) -> dict:
        return (self.rng if rng is None else rng).bit_generator.state

    def set_rng_state(self, state: dict, rng: np.random.Generator | None = None) -> None:
        (self.rng if rng is None else rng).bit_generator.state = state

    def random_uniform(
        self, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        rng = self.rng if rng is None else rng
        if np.dtype(dtype) in (np.float32, np.float64):
            return rng.random(shape, dtype=dtype)
        return rng.random(shape).astype(dtype)

    def random_normal(
        self, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        rng = self.rng if rng is None else rng
        if np.dtype(dtype) in (np.float32, np.float64):
            return rng.standard_normal(shape, dtype=dtype)
        return rng.standard_normal(shape).astype(dtype)

    def random_integers(
        self, low: int, high: int, shape: tuple[int, ...], dtype: Any,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:  # fmt: skip
        return (self.rng if rng is None else rng).integers(low, high, size=shape, dtype=dtype)

    def scatter_add(self, target: np.ndarray, index: Any, values: np.ndarray) -> None:
        np.add.at(target, index, values)

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """np.matmul, with the second operand of a batched product made contiguous where its
        matrices are transposed views: BLAS runs such products about twice as slow, more than
        the copy costs (a 2-D product hands the transpose to BLAS and is left alone). A stack
        of small products is then shared over the CPUs by matrix (the compiled kernel, making
        NumPy's BLAS calls: the same bits)."""
        if max(a.ndim, b.ndim) > 2:
            if b.ndim >= 2 and b.strides[-1] != b.itemsize:
                b = np.ascontiguousarray(b)
            if out is None and (product := cpu_kernels.batched_matmul(a, b)) is not None:
                return product
        return np.matmul(a, b, out=out)

    def value_bounds(self, values: np.ndarray) -> tuple[int, int]:
        return int(values.min()), int(values.max())  # host scalars already: no stack

    def max_pool_tiles(
        self, x: np.ndarray, kernel: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        return cpu_kernels.max_pool_tiles(x, kernel)

    def max_pool_tiles_backward(
        self, g: np.ndarray, where: np.ndarray, kernel: tuple[int, int], shape: tuple[int, ...]
    ) -> np.ndarray | None:
        return cpu_kernels.max_pool_tiles_backward(g, where, kernel, shape)

    @property
    def compiled_kernels(self) -> bool:  # type: ignore[override]
        return cpu_kernels.available()

    def conv_fold_batch_first(self, cols: np.ndarray, dims: tuple[int, ...]) -> np.ndarray | None:
        return cpu_kernels.conv_fold_batch_first(cols, dims)

    def conv_fold_batch_last(self, cols: np.ndarray, dims: tuple[int, ...]) -> np.ndarray | None:
        return cpu_kernels.conv_fold_batch_last(cols, dims)

    def softmax_columns(self, scores: np.ndarray, causal: bool) -> bool:
        return cpu_kernels.softmax_columns(scores, causal)

    def softmax_columns_backward(self, ds: np.ndarray, p: np.ndarray) -> bool:
        return cpu_kernels.softmax_columns_backward(ds, p)

    def layer_norm(
        self, rows: np.ndarray, w: np.ndarray | None, b: np.ndarray | None, eps: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        return cpu_kernels.layer_norm(rows, w, b, eps)

    def layer_norm_backward(
        self,
        g: np.ndarray,
        normalised: np.ndarray,
        inv_std: np.ndarray,
        w: np.ndarray | None,
        wanted: tuple[bool, bool, bool],
    ) -> tuple[Any, Any, Any] | None:
        return cpu_kernels.layer_norm_backward(g, normalised, inv_std, w, wanted)

    def add_large(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        total = cpu_kernels.add(a, b)  # split over the CPUs, NumPy's bits
        return a + b if total is None else total

    def add_rows(self, out: np.ndarray, row: np.ndarray) -> None:
        if not cpu_kernels.add_rows(out, row):  # split over the CPUs, NumPy's bits
            out += row

    def max_along(self, x: np.ndarray, axis: int) -> np.ndarray:
        if x.ndim == 2 and axis % 2 == 1 and 1 <= x.shape[1] <= 16 and x.shape[0] >= 64:
            # Many rows of a few values (logits of a few classes): NumPy reduces each short
            # row on its own, but a transposed copy compares whole columns at once (256 rows
            # of 10: 13 -> 2 µs).
            return np.ascontiguousarray(x.T).max(axis=0)[:, None]
        # With an initial value NumPy takes another inner loop for a short contiguous axis,
        # two to three times quicker for rows of 64 or 128 (the same values: rows are never
        # empty here, and NaN still wins).
        return _maximum_reduce(x, axis=axis, keepdims=True, initial=-np.inf)

    def sum_along(self, x: np.ndarray, axis: int) -> np.ndarray:
        # Along either of the last two axes of float32/float64 data a product with a vector
        # of ones (BLAS gemv) is several times quicker than NumPy's reduction of short rows.
        axis = axis % x.ndim if x.ndim else axis
        if x.dtype in _BLAS_FLOATS and x.ndim >= 2 and axis >= x.ndim - 2 and x.size:
            ones = _ones(x.shape[axis], x.dtype)
            if axis == x.ndim - 1:
                return (x @ ones)[..., None]
            return (ones @ x)[..., None, :]
        return x.sum(axis=axis, keepdims=True)

    def erf(self, x: np.ndarray) -> np.ndarray:
        """The error function: SciPy's where SciPy is installed, else special_math's."""
        library = special_math.scipy_special()
        if library is None:
            return super().erf(x)
        return special_math.via_library(self, library.erf, x)

    def normal_cdf(self, x: np.ndarray) -> np.ndarray:
        """Φ(x) = (1 + erf(x/√2))/2: through SciPy's erf where SciPy is installed, else
        special_math's (float32 and float16 from their own rational, without a separate erf)."""
        if special_math.scipy_special() is None:
            return special_math.normal_cdf(self, x)
        return super().normal_cdf(x)

    def sgd_step(self, param: Any, grad: Any, momentum_buffer: Any, lr: float,
                 momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, first: bool = False,
                 scratch: list[Any] | None = None) -> None:  # fmt: skip
        """The SGD update in one compiled pass (cpu_kernels.sgd, the same bits), else the twin."""
        lr, momentum, dampening = float(lr), float(momentum), float(dampening)
        weight_decay = float(weight_decay)
        buf = momentum_buffer if momentum != 0 else None
        if (momentum != 0 and buf is None) or not cpu_kernels.sgd(
            param, grad, buf, lr, momentum, dampening, nesterov, weight_decay, first
        ):
            super().sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, nesterov,
                             weight_decay, first, scratch)  # fmt: skip

    def adam_step(self, param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any,
                  max_exp_avg_sq: Any, step: int, lr: float, beta1: float = 0.9,
                  beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                  amsgrad: bool = False, decoupled: bool = False,
                  scratch: list[Any] | None = None) -> None:  # fmt: skip
        """The Adam/AdamW update in one compiled pass (cpu_kernels.adam, the same bits; not
        with amsgrad), else the twin."""
        if not amsgrad:
            lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
            weight_decay = float(weight_decay)
            step_size, correction2_sqrt = adam_bias_corrections(lr, beta1, beta2, step)
            scalars = (1.0 - lr * weight_decay, weight_decay, 1.0 - beta1, beta2, 1.0 - beta2,
                       correction2_sqrt, float(eps), step_size)  # fmt: skip
            if cpu_kernels.adam(param, grad, exp_avg, exp_avg_sq, scalars, decoupled):
                return
        super().adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1,
                          beta2, eps, weight_decay, amsgrad, decoupled, scratch)  # fmt: skip

    def gelu_and_cdf(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x·Φ(x), Φ(x)): one compiled pass for float32 (cpu_kernels), else the product taken
        in special_math's blocks where SciPy is missing."""
        fast = cpu_kernels.gelu_and_cdf(x)
        if fast is not None:
            return fast
        if special_math.scipy_special() is None:
            return special_math.gelu_and_cdf(self, x)
        return super().gelu_and_cdf(x)

    def gelu_grad_from_cdf(self, g: np.ndarray, x: np.ndarray, cdf: np.ndarray) -> np.ndarray:
        """g·(Φ(x) + x·φ(x)): one compiled pass for float32 (cpu_kernels), else the twin's
        blocked passes."""
        fast = cpu_kernels.gelu_grad_from_cdf(g, x, cdf)
        return super().gelu_grad_from_cdf(g, x, cdf) if fast is None else fast

    def erfc(self, x: np.ndarray) -> np.ndarray:
        """1 - erf(x): SciPy's where SciPy is installed, else special_math's."""
        library = special_math.scipy_special()
        if library is None:
            return super().erfc(x)
        return special_math.via_library(self, library.erfc, x)
