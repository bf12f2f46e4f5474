"""dtypes: NumPy's dtype objects (CuPy uses the same), and the rules for picking one."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DTypeError

float16 = half = np.dtype("float16")
float32 = float = np.dtype("float32")
float64 = double = np.dtype("float64")
int8 = np.dtype("int8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = long = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

DEFAULT_FLOAT = float32  # the default until set_default_dtype changes it: read default_float()
SUPPORTED = frozenset([float16, float32, float64, int8, int16, int32, int64, uint8, bool_])
_default_float = [DEFAULT_FLOAT]


def default_float() -> np.dtype:
    """The dtype new floating tensors get when none is asked for (float32 unless changed)."""
    return _default_float[0]


def set_default_dtype(dtype: Any) -> None:
    """Make `dtype` (float16, float32 or float64) the dtype of new floating tensors: creation
    functions, random draws, layers' parameters and Python floats, as PyTorch's
    `torch.set_default_dtype` (e.g. float64 to compare gradients to 1e-14)."""
    dt = to_dtype(dtype)
    if dt is None or not is_floating(dt):
        raise DTypeError(f"set_default_dtype takes float16, float32 or float64, got {dtype!r}")
    _default_float[0] = dt


def get_default_dtype() -> np.dtype:
    """The dtype of new floating tensors (PyTorch's `torch.get_default_dtype`)."""
    return _default_float[0]


def to_dtype(spec: Any) -> np.dtype | None:
    """Normalise a dtype given as a name, NumPy type or dtype; None stays None."""
    if spec is None:
        return None
    try:
        dt = np.dtype(spec)
    except TypeError as exc:
        raise DTypeError(f"not a dtype: {spec!r}") from exc
    if dt not in SUPPORTED:
        names = ", ".join(sorted(d.name for d in SUPPORTED))
        raise DTypeError(f"dtype {dt.name} is not supported; use one of: {names}")
    return dt


def is_floating(dtype: np.dtype) -> bool:
    """True for float16/32/64, the dtypes that can carry gradients."""
    return dtype.kind == "f"


def default_dtype_for(array: np.ndarray, from_python: bool) -> np.dtype:
    """The dtype a new tensor gets when none is asked for.

    Data written as Python floats becomes float32 (the deep-learning default), Python ints
    int64; arrays keep their own dtype, as `torch.from_numpy` does.
    """
    dt = array.dtype
    if not dt.isnative:  # a big-endian array is copied into native order (as torch.tensor)
        dt = dt.newbyteorder("=")
    if from_python and dt == float64:
        return default_float()
    if dt not in SUPPORTED:
        raise DTypeError(f"cannot make a tensor of dtype {dt.name} (from {type(array).__name__})")
    return dt
