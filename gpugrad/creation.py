"""Making tensors: from data, filled, ranges, and random draws. All take dtype, device and
requires_grad; random draws repeat after `gg.manual_seed(n)`."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from . import _args
from .backend import Device, get_backend, set_seed
from .dtypes import default_float, int64, is_floating, to_dtype
from .errors import ArgumentError, ArgumentTypeError, DTypeError, OutOfMemoryError
from .generator import Generator, generator_rng
from .tensor import Tensor, _make, to_array

DeviceLike = str | Device | None


_F = TypeVar("_F", bound=Callable[..., Any])


def allocates(fn: _F) -> _F:
    """A creation function whose allocation fails raises OutOfMemoryError naming it (the
    array library's MemoryError already names the shape and the bytes asked for)."""

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemoryError as exc:  # NumPy's _ArrayMemoryError, CuPy's OutOfMemoryError
            raise OutOfMemoryError(f"{fn.__name__}: {exc}") from None

    return checked  # type: ignore[return-value]


def _size_arg(size: Any) -> tuple[Any, ...]:
    """A `size=` argument (an int or a sequence of them) in the form check_size takes."""
    return size if isinstance(size, (tuple, list)) else (size,)


def _allocate(backend: Any, function: str, *args: Any, **kwargs: Any) -> Any:
    """backend.<function>(*args, **kwargs) on the backend's own device: CuPy's creation
    functions allocate on the current GPU, which need not be the `cuda:N` asked for."""
    with backend.device_context():
        return getattr(backend, function)(*args, **kwargs)


def _finish(data: Any, backend: Any, requires_grad: bool) -> Tensor:
    t = _make(data, backend, None)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(
    data: Any, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, scalars, arrays or a Tensor).

    Python floats become float32, Python ints int64; arrays keep their dtype.
    """
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def as_tensor(
    data: Any, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
) -> Tensor:
    """Like `tensor`, but shares memory with `data` when dtype and device already match."""
    if isinstance(data, Tensor) and dtype is None and (device is None or data.device == device):
        return data
    backend = get_backend(device)
    return _finish(to_array(data, backend, dtype), backend, requires_grad)


def from_numpy(array: Any) -> Tensor:
    """A cpu tensor sharing memory with a NumPy array (changes show in both).

    The tensor holds a view of the array, never the array itself, so it never owns the
    memory: optimizers then update such a parameter where it is (see `optim.optimizer`).
    A non-native byte order cannot be shared, and raises a DTypeError."""
    backend = get_backend("cpu")
    if not backend.is_array(array):
        raise ArgumentTypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    if not array.dtype.isnative:
        raise DTypeError(
            f"from_numpy: the array's dtype {array.dtype.str!r} is not in this machine's byte "
            "order, so its memory cannot be shared; convert it first with "
            "array.astype(array.dtype.newbyteorder('=')), or copy it with gg.tensor(array)"
        )
    return _make(to_array(array.view(), backend), backend, None)


def _filled(fill: str, size: tuple[Any, ...], dtype: Any, device: DeviceLike, requires_grad: bool):
    shape = _args.shape(fill, size)
    backend = get_backend(device)
    dt = to_dtype(dtype) or default_float()
    return _finish(_allocate(backend, fill, shape, dtype=dt), backend, requires_grad)


@allocates
def zeros(*size: Any, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False):
    """A tensor of zeros: `zeros(2, 3)` or `zeros((2, 3))`."""
    return _filled("zeros", size, dtype, device, requires_grad)


@allocates
def ones(*size: Any, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False):
    """A tensor of ones."""
    return _filled("ones", size, dtype, device, requires_grad)


@allocates
def empty(*size: Any, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False):
    """A tensor whose contents are whatever memory held (fast; fill it before reading)."""
    return _filled("empty", size, dtype, device, requires_grad)


@allocates
def full(
    size: Any, fill_value: Any, dtype: Any = None, device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """A tensor filled with `fill_value` (dtype inferred from it when not given)."""
    shape = _args.shape("full", _size_arg(size))
    is_bool = getattr(getattr(fill_value, "dtype", None), "kind", None) == "b"  # np.bool_
    if not isinstance(fill_value, numbers.Real) and not is_bool:
        raise ArgumentTypeError(
            f"full: fill_value must be a real number or a bool, got {fill_value!r} "
            f"({type(fill_value).__name__})"
        )
    backend = get_backend(device)
    dt = to_dtype(dtype)
    if dt is None:
        dt = (
            default_float()
            if isinstance(fill_value, float)
            else to_array(fill_value, backend).dtype
        )
    return _finish(_allocate(backend, "full", shape, fill_value, dtype=dt), backend, requires_grad)


@allocates
def arange(
    start: float, end: float | None = None, step: float = 1, dtype: Any = None,
    device: DeviceLike = None, requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """Evenly spaced values in [start, end): integers unless any argument is a float."""
    if end is None:
        start, end = 0, start
    first = _args.number("arange", "start", start, finite=True)
    last = _args.number("arange", "end", end, finite=True)
    stride = _args.number("arange", "step", step, finite=True)
    if stride == 0:
        raise ArgumentError(
            f"arange: step must not be 0, got step 0 (start {start!r}, end {end!r})"
        )
    if (last - first) * stride < 0:
        raise ArgumentError(
            f"arange: step {step!r} goes away from end {end!r} (start {start!r}); "
            "use a step of the other sign"
        )
    count = math.ceil((last - first) / stride)
    if count > _args.MAX_ELEMENTS:
        raise ArgumentError(
            f"arange: start {start!r}, end {end!r}, step {step!r} give {count} elements, more "
            f"than an array can hold (at most {_args.MAX_ELEMENTS})"
        )
    backend = get_backend(device)
    dt = to_dtype(dtype)
    if dt is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dt = default_float() if is_float else int64
    return _finish(_allocate(backend, "arange", start, end, step, dtype=dt), backend, requires_grad)


@allocates
def linspace(
    start: float, end: float, steps: int, dtype: Any = None, device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """`steps` evenly spaced values from start to end, both included."""
    _args.number("linspace", "start", start, finite=True)
    _args.number("linspace", "end", end, finite=True)
    steps = _args.size("linspace", "steps", steps, minimum=0)
    backend = get_backend(device)
    dt = to_dtype(dtype) or default_float()
    return _finish(
        _allocate(backend, "linspace", start, end, steps, dtype=dt), backend, requires_grad
    )


@allocates
def eye(
    n: int, m: int | None = None, dtype: Any = None, device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """An n×m identity matrix (m defaults to n)."""
    n = _args.size("eye", "n", n, minimum=0)
    m = n if m is None else _args.size("eye", "m", m, minimum=0)
    _args.shape("eye", (n, m))  # n·m elements must fit
    backend = get_backend(device)
    dt = to_dtype(dtype) or default_float()
    return _finish(_allocate(backend, "eye", n, m, dtype=dt), backend, requires_grad)


def _random_dtype(dtype: Any, floating: bool, what: str) -> Any:
    """The dtype of a random draw; refuses a kind the draw would silently round away
    (`rand(dtype=int64)` would be all zeros)."""
    dt = to_dtype(dtype) or (default_float() if floating else int64)
    if is_floating(dt) != floating or dt.kind == "b":
        kind = "floating-point" if floating else "integer"
        raise DTypeError(f"{what} draws {kind} numbers; dtype {dt.name} cannot hold them")
    return dt


@allocates
def rand(
    *size: Any, generator: Generator | None = None, dtype: Any = None,
    device: DeviceLike = None, requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """Uniform random numbers in [0, 1), from `generator` or the global stream."""
    shape, dt = _args.shape("rand", size), _random_dtype(dtype, True, "rand")
    backend = get_backend(device)
    data = _allocate(
        backend, "random_uniform", shape, dt, generator_rng(generator, backend, "rand")
    )
    return _finish(data, backend, requires_grad)


@allocates
def randn(
    *size: Any, generator: Generator | None = None, dtype: Any = None,
    device: DeviceLike = None, requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """Standard normal random numbers, from `generator` or the global stream."""
    shape, dt = _args.shape("randn", size), _random_dtype(dtype, True, "randn")
    backend = get_backend(device)
    data = _allocate(
        backend, "random_normal", shape, dt, generator_rng(generator, backend, "randn")
    )
    return _finish(data, backend, requires_grad)


@allocates
def randint(
    low: int, high: int | Sequence[int] | None = None, size: Any = (), dtype: Any = None,
    device: DeviceLike = None, generator: Generator | None = None,
) -> Tensor:  # fmt: skip
    """Random integers in [low, high) (or [0, low) when high is omitted), int64 by default.

    PyTorch's two-argument form `randint(high, size)` works too: a shape in the second place
    is the size and the first number the (exclusive) upper bound.
    """
    if isinstance(high, (tuple, list)) and size == ():
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    low, high = _args.integer("randint", "low", low), _args.integer("randint", "high", high)
    if low >= high:
        raise ArgumentError(f"randint needs low < high, got low={low}, high={high}")
    if low < -(2**63) or high > 2**63:
        raise ArgumentError(f"randint: low={low}, high={high} do not fit int64")
    shape = _args.shape("randint", _size_arg(size))
    dt = _random_dtype(dtype, False, "randint")
    backend = get_backend(device)
    rng = generator_rng(generator, backend, "randint")
    return _make(_allocate(backend, "random_integers", low, high, shape, dt, rng), backend, None)


def _like(x: Tensor, dtype: Any, device: DeviceLike) -> tuple[tuple[int, ...], Any, Any]:
    if not isinstance(x, Tensor):
        raise ArgumentTypeError(f"*_like functions take a Tensor, got {type(x).__name__} {x!r}")
    return (
        x.shape,
        dtype if dtype is not None else x.dtype,
        device if device is not None else x.device,
    )


def zeros_like(
    x: Tensor, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
):
    """Zeros with x's shape (and dtype and device unless given)."""
    shape, dt, dev = _like(x, dtype, device)
    return zeros(shape, dtype=dt, device=dev, requires_grad=requires_grad)


def ones_like(x: Tensor, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False):
    """Ones with x's shape (and dtype and device unless given)."""
    shape, dt, dev = _like(x, dtype, device)
    return ones(shape, dtype=dt, device=dev, requires_grad=requires_grad)


def empty_like(
    x: Tensor, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
):
    """Uninitialised memory with x's shape (and dtype and device unless given)."""
    shape, dt, dev = _like(x, dtype, device)
    return empty(shape, dtype=dt, device=dev, requires_grad=requires_grad)


def full_like(
    x: Tensor, fill_value: Any, dtype: Any = None, device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:  # fmt: skip
    """`fill_value` everywhere, with x's shape (and dtype and device unless given)."""
    shape, dt, dev = _like(x, dtype, device)
    return full(shape, fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def rand_like(x: Tensor, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False):
    """Uniform [0, 1) draws with x's shape (and dtype and device unless given)."""
    shape, dt, dev = _like(x, dtype, device)
    return rand(shape, dtype=dt, device=dev, requires_grad=requires_grad)


def randn_like(
    x: Tensor, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
):
    """Standard normal draws with x's shape (and dtype and device unless given)."""
    shape, dt, dev = _like(x, dtype, device)
    return randn(shape, dtype=dt, device=dev, requires_grad=requires_grad)


def randint_like(x: Tensor, low: int, high: int | None = None, dtype: Any = None,
                 device: DeviceLike = None) -> Tensor:  # fmt: skip
    """Random integers with x's shape (dtype int64 unless given)."""
    _like(x, None, None)  # x must be a Tensor
    return randint(
        low, high, x.shape, dtype=dtype, device=device if device is not None else x.device
    )


def manual_seed(seed: int) -> None:
    """Make random draws repeat: reseeds every device's global generator (and those made
    later). A `gg.Generator` keeps its own stream."""
    set_seed(_args.seed("manual_seed", seed))
