"""The Backend: everything gpugrad needs from an array library, behind one small interface.

Ops call array functions through a backend (`backend.exp(x)`), never through `numpy` or `cupy`
directly. The names below are bound from the array module when a backend is made, so calling
them costs one attribute lookup. The same names exist in `gpugrad.ops` taking Tensors, which is
how one backward formula serves both plain backward (arrays) and `create_graph=True` (Tensors).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from types import ModuleType
from typing import Any

from .activation_math import ActivationPrimitives
from .device import Device
from .loss_math import LossPrimitives
from .optimizer_math import OptimizerPrimitives

# The array functions that forward and backward formulas may use, NumPy-named.
ARRAY_FUNCTIONS = (
    "abs", "arange", "argmax", "argmin", "broadcast_to", "clip", "concatenate", "cos", "cumsum",
    "empty", "equal", "exp", "expand_dims", "expm1", "eye", "flip", "full", "greater",
    "greater_equal", "isfinite", "isnan", "less", "less_equal", "linspace", "log", "log1p",
    "logical_and", "logical_not", "logical_or", "logical_xor", "matmul", "max", "maximum",
    "may_share_memory", "mean", "min", "minimum", "moveaxis", "not_equal", "ones", "pad",
    "prod", "repeat", "reshape", "sign", "sin", "sqrt", "squeeze", "stack", "sum", "swapaxes",
    "take_along_axis", "tanh", "tile", "transpose", "var", "where", "zeros",
    "argsort", "ceil", "cumprod", "einsum", "floor", "isclose", "log10", "log2", "roll", "round",
    "tril", "triu", "trunc", "zeros_like",
)  # fmt: skip


def accumulation_dtype(dtype: Any) -> Any:
    """The dtype repeated-index sums run in: float16 in float32 (one rounding at the end,
    where NumPy's add.at rounds after every addition and CuPy's atomicAdd in an order the GPU
    picks), integers and bools in int64 (CuPy's atomicAdd has no 8-, 16- or 64-bit signed
    form; uint64 keeps its own). Sums wrap back into the dtype as NumPy's would."""
    if dtype.kind == "f" and dtype.itemsize < 4:
        return "float32"
    if dtype.kind in "biu" and dtype.name != "uint64":
        return "int64"
    return dtype


class Backend(ActivationPrimitives, LossPrimitives, OptimizerPrimitives, ABC):
    """An array library bound to one device.

    Subclasses set `xp` (the array module) and implement the conversion, random and
    scatter primitives. Everything in ARRAY_FUNCTIONS is available as an attribute.
    """

    xp: ModuleType
    device: Device
    # Whether nn.Sequential should run Linear + activation as one node (a fused kernel).
    fuses_bias_activation = False

    def __init__(self, xp: ModuleType, device: Device) -> None:
        self.xp = xp
        self.device = device
        self.array_type = xp.ndarray
        for name in ARRAY_FUNCTIONS:
            if not hasattr(type(self), name):  # a backend may give its own (NumPy's matmul)
                setattr(self, name, getattr(xp, name))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.device}>"

    # --- arrays in and out -------------------------------------------------------------
    @abstractmethod
    def asarray(self, data: Any, dtype: Any = None, copy: bool | None = None) -> Any:
        """Make an array of this backend from array-like data (no copy when not needed)."""

    @abstractmethod
    def to_numpy(self, array: Any) -> Any:
        """Return a NumPy array with the contents of `array` (a host copy on GPU backends)."""

    def is_array(self, obj: Any) -> bool:
        """True when `obj` is an array of this backend's library."""
        return isinstance(obj, self.xp.ndarray)

    # --- random numbers ----------------------------------------------------------------
    # Every draw takes `rng`: a generator made by `make_rng` (a `gg.Generator`'s own stream),
    # or None for this backend's global one, `self.rng`, which `gg.manual_seed` resets.
    rng: Any

    @abstractmethod
    def make_rng(self, seed: int | None) -> Any:
        """A new random generator of this device, seeded by `seed` (fresh entropy for None)."""

    def seed(self, seed: int) -> None:
        """Reset this backend's global random generator so draws repeat."""
        self.rng = self.make_rng(seed)

    def rng_state(self, rng: Any = None) -> Any:
        """A generator's state (the global one by default) as plain values and NumPy arrays,
        so `gg.save` can store it and `set_rng_state` restore it."""
        return None

    def set_rng_state(self, state: Any, rng: Any = None) -> None:
        """Restore a state from `rng_state` into a generator (the global one by default)."""

    @abstractmethod
    def random_uniform(self, shape: tuple[int, ...], dtype: Any, rng: Any = None) -> Any:
        """Uniform draws in [0, 1)."""

    @abstractmethod
    def random_normal(self, shape: tuple[int, ...], dtype: Any, rng: Any = None) -> Any:
        """Standard normal draws."""

    @abstractmethod
    def random_integers(
        self, low: int, high: int, shape: tuple[int, ...], dtype: Any, rng: Any = None
    ) -> Any:
        """Integers drawn uniformly from [low, high)."""

    # --- host staging --------------------------------------------------------------------
    def pin(self, array: Any) -> Any:
        """A host (NumPy) array staged for a fast copy to this device: in page-locked memory
        on a GPU; the array itself where the device is the host."""
        return array

    # --- primitives backward formulas need ---------------------------------------------
    @abstractmethod
    def scatter_add(self, target: Any, index: Any, values: Any) -> None:
        """`target[index] += values`, accumulating where `index` repeats an element."""

    def scatter_to(self, shape: tuple[int, ...], index: Any, values: Any, accumulate: bool) -> Any:
        """Zeros of `shape` (dtype of `values`) with `values` placed at `index`.

        With `accumulate`, values aimed at the same element add up (integer-array indices
        may repeat an element); without it, a plain assignment is enough and faster. The
        sums run in `accumulation_dtype`, so NumPy's add.at and CuPy's atomicAdd agree.
        """
        if not accumulate:
            out = self.xp.zeros(shape, dtype=values.dtype)
            out[index] = values
            return out
        wide = accumulation_dtype(values.dtype)
        out = self.xp.zeros(shape, dtype=wide)
        self.scatter_add(out, index, values.astype(wide, copy=False))
        return out.astype(values.dtype, copy=False)

    def value_bounds(self, values: Any) -> tuple[int, int]:
        """The least and greatest value of a non-empty integer array, as Python ints: two
        reductions, read back to the host together."""
        low, high = self.xp.stack((values.min(), values.max())).tolist()
        return int(low), int(high)

    def max_pool_tiles(self, x: Any, kernel: tuple[int, int]) -> tuple[Any, Any] | None:
        """For max pooling whose `kernel` windows tile (N, C, H, W) array `x`: each window's
        maximum and the row-major position of its first maximum (NaN first), in one compiled
        pass where the backend has one; None here (ops/pool.py then runs its array passes)."""
        return None

    def max_pool_tiles_backward(
        self, g: Any, where: Any, kernel: tuple[int, int], shape: tuple[int, ...]
    ) -> Any:
        """The input gradient of `max_pool_tiles`: g at each window's recorded position, g·0
        at the others; None where `max_pool_tiles` gave None."""
        return None

    # Whether compiled CPU kernels (kernels/cpu) serve this backend: where an op would lay its
    # work out differently for them (ops/conv.py's input gradient), it asks this first.
    compiled_kernels = False

    def conv_fold_batch_last(self, cols: Any, dims: tuple[int, ...]) -> Any:
        """col2im of a 2-D convolution's input gradient from columns with the batch last, (C,
        KH, KW, OH, OW, n), into an (n, C, H, W) array, where the backend has a compiled pass
        (`dims` as cpu_kernels.conv_fold_batch_last); None here (ops/conv.py folds itself)."""
        return None

    def conv_fold_batch_first(self, cols: Any, dims: tuple[int, ...]) -> Any:
        """`conv_fold_batch_last` from columns with the batch first, (n, C, KH, KW, OH, OW)."""
        return None

    def softmax_columns(self, scores: Any, causal: bool) -> bool:
        """Softmax down each column of each (S, L) matrix of `scores`, in place, in one compiled
        pass where the backend has one (key j hidden from query i when j > i if `causal`);
        False, untouched, here (nn/attention.py then runs its array passes)."""
        return False

    def softmax_columns_backward(self, ds: Any, p: Any) -> bool:
        """ds ← (ds − Σ_rows ds·p)·p per column, in place, where the backend has a compiled
        pass for these arrays; False, untouched, otherwise."""
        return False

    def layer_norm(self, rows: Any, w: Any, b: Any, eps: float) -> tuple[Any, Any, Any] | None:
        """Layer norm of the rows of a (rows, size) array in one compiled pass where the backend
        has one: (out, x̂, 1/√(var + eps) as (rows, 1)); None here (nn/layers.py's _LayerNorm
        then runs its array passes)."""
        return None

    def layer_norm_backward(
        self, g: Any, normalised: Any, inv_std: Any, w: Any, wanted: tuple[bool, bool, bool]
    ) -> tuple[Any, Any, Any] | None:
        """(dL/dx, dL/dw, dL/db) of `layer_norm`, each where `wanted`; None where the backend
        has no compiled pass for these arrays."""
        return None

    def add_large(self, a: Any, b: Any) -> Any:
        """a + b for large float arrays of one shape (a residual stream's)."""
        return a + b

    def add_rows(self, out: Any, row: Any) -> None:
        """out += row over the last axis of float array `out`, in place (a layer's bias added
        to its fresh product)."""
        out += row

    def max_along(self, x: Any, axis: int) -> Any:
        """The largest value along `axis` of float array `x`, the axis kept (size 1)."""
        return x.max(axis=axis, keepdims=True)

    def sum_along(self, x: Any, axis: int) -> Any:
        """The sum along `axis` of float array `x`, the axis kept (size 1)."""
        return x.sum(axis=axis, keepdims=True)

    def l2_norm(self, array: Any) -> Any:
        """The L2 norm of all of `array`'s values, a 0-d float64 array on this device
        (summed in float64: squares of float16 values overflow fast)."""
        flat = array.ravel().astype("float64")
        return self.xp.sqrt(self.xp.dot(flat, flat))

    def synchronize(self) -> None:
        """Wait for queued work on this device to finish (a no-op on the CPU)."""

    def device_context(self) -> contextlib.AbstractContextManager:
        """A context manager inside which the array library allocates on this backend's
        device: CuPy's creation functions use the *current* GPU, not a tensor's `cuda:N`.
        Nothing to do where there is one device (the CPU)."""
        return contextlib.nullcontext()
