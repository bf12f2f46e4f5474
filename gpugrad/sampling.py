"""Random draws shaped by their arguments: randperm, multinomial, bernoulli, normal.

Each draws from `generator` (a `gg.Generator` of the result's device) or, without one, from
the device's global stream, so `gg.manual_seed` repeats them. Everything here is built on the
backend's uniform and normal draws and its array functions, so a draw means the same on every
device. The results carry no gradient.
"""

from __future__ import annotations

from typing import Any

from . import _args
from .backend import Device, get_backend
from .backend.base import Backend
from .creation import allocates
from .dtypes import default_float, float32, float64, int64, is_floating, to_dtype
from .errors import ArgumentError, ArgumentTypeError, DeviceError, DTypeError, ShapeError
from .generator import Generator, generator_rng
from .tensor import Tensor, _make

DeviceLike = str | Device | None


def _first(array: Any, mask: Any) -> float:
    """The first value of `array` where `mask` holds (for an error message)."""
    return float(array[mask].ravel()[0])


@allocates
def randperm(
    n: int, *, generator: Generator | None = None, dtype: Any = None, device: DeviceLike = None
) -> Tensor:
    """A random permutation of 0, 1, ..., n-1 (int64 unless `dtype` says otherwise)."""
    n = _args.size("randperm", "n", n, minimum=0)
    dt = to_dtype(dtype) or int64
    if dt.kind not in "iu":
        raise DTypeError(f"randperm gives integers; dtype {dt.name} cannot hold them")
    backend = get_backend(device)
    keys = backend.random_uniform((n,), float64, generator_rng(generator, backend, "randperm"))
    # Sorting independent uniform keys gives every order the same chance (a tie between two
    # of n float64 keys is about n**2 / 2**53 likely, far below anything a test could see).
    return _make(backend.xp.argsort(keys, kind="stable").astype(dt), backend, None)


def check_weights(
    weights: Any, num_samples: Any, replacement: bool, where: str = "multinomial"
) -> int:
    """Validate multinomial's arguments (before anything is drawn): `weights` a floating
    1-D or 2-D Tensor of finite, non-negative values with a positive one in every row, and
    enough of them for `num_samples` draws without replacement. Returns num_samples."""
    if not isinstance(weights, Tensor):
        raise ArgumentTypeError(f"{where} takes a Tensor of weights, got {type(weights).__name__}")
    if weights.ndim not in (1, 2):
        raise ShapeError(f"{where} takes a 1-D or 2-D tensor of weights, got shape {weights.shape}")
    if not is_floating(weights.dtype):
        raise DTypeError(f"{where} takes floating-point weights, got {weights.dtype.name}")
    num_samples = _args.size(where, "num_samples", num_samples, minimum=1)
    xp, w = weights._backend.xp, weights.data
    bad = xp.logical_not(xp.isfinite(w)) | (w < 0)
    if bool(bad.any()):
        raise ArgumentError(
            f"{where} weights must be finite and non-negative, got {_first(w, bad)}"
        )
    if weights.shape[-1] == 0:
        raise ArgumentError(f"{where} needs at least one category, got shape {weights.shape}")
    positive = (w.reshape(-1, w.shape[-1]) > 0).sum(axis=-1)
    empty = positive == 0
    if bool(empty.any()):
        row = int(xp.argmax(empty))
        raise ArgumentError(
            f"{where} needs a positive weight in every row; row {row} of weights of "
            f"shape {weights.shape} is all zeros"
        )
    fewest = int(positive.min()) if positive.size else num_samples
    if not replacement and num_samples > fewest:
        raise ArgumentError(
            f"{where} without replacement cannot draw num_samples={num_samples} from a "
            f"row with only {fewest} non-zero weights"
        )
    return num_samples


@allocates
def multinomial(
    input: Tensor, num_samples: int, replacement: bool = False, *,
    generator: Generator | None = None,
) -> Tensor:  # fmt: skip
    """Draw `num_samples` category indices per row of non-negative `input` weights (1-D, or
    2-D for one draw per row); int64, shape (num_samples,) or (rows, num_samples).

    Weights need not sum to 1. Without replacement no index repeats within a row, so a row
    needs at least num_samples non-zero weights; zero-weight categories are never drawn.
    """
    num_samples = check_weights(input, num_samples, replacement)
    backend = input._backend
    xp, rng = backend.xp, generator_rng(generator, backend, "multinomial")
    w = input.data.reshape(-1, input.shape[-1]).astype(float64)
    rows, categories = w.shape
    if rows == 0:  # weights of shape (0, K): no rows, nothing to draw
        picks = xp.zeros((0, num_samples), dtype=int64)
    elif replacement:
        # Inverse CDF: the first category whose running total exceeds u * total.
        cdf = xp.cumsum(w, axis=-1)
        u = backend.random_uniform((rows, num_samples), float64, rng) * cdf[:, -1:]
        picks = xp.stack([xp.searchsorted(cdf[r], u[r], side="right") for r in range(rows)])
        # u * total can round up to the total itself; that draw belongs to the last category
        # with weight, never to a zero-weight one after it.
        last = categories - 1 - xp.argmax(xp.flip(w > 0, axis=-1), axis=-1)
        picks = xp.minimum(picks, last[:, None])
    else:
        # Exponential race: the k smallest of E_i / w_i (E_i ~ Exp(1)) are a draw of k without
        # replacement with chances proportional to w; zero weights never finish.
        e = -xp.log1p(-backend.random_uniform((rows, categories), float64, rng))
        keys = xp.where(w > 0, e / xp.where(w > 0, w, 1.0), xp.inf)
        # Stable, as every sort in gpugrad: NumPy's default sort is not, CuPy's always is, so
        # equal keys (rare but possible among float64 draws) resolve the same way on both.
        picks = xp.argsort(keys, axis=-1, kind="stable")[:, :num_samples]
    picks = picks.astype(int64)
    return _make(picks.reshape(num_samples) if input.ndim == 1 else picks, backend, None)


def bernoulli(input: Tensor, *, generator: Generator | None = None) -> Tensor:
    """1 with probability p and 0 otherwise, for each probability p in `input` (a floating
    tensor of values in [0, 1]); same shape, dtype and device."""
    if not isinstance(input, Tensor):
        raise ArgumentTypeError(
            f"bernoulli takes a Tensor of probabilities, got {type(input).__name__}"
        )
    if not is_floating(input.dtype):
        raise DTypeError(f"bernoulli takes floating-point probabilities, got {input.dtype.name}")
    backend, p = input._backend, input.data
    xp = backend.xp
    bad = xp.logical_not((p >= 0) & (p <= 1))  # NaN fails both comparisons
    if bool(bad.any()):
        raise ArgumentError(f"bernoulli probabilities must be in [0, 1], got {_first(p, bad)}")
    # Draw in float32 at least: a float16 draw can round up to 1.0, which would turn p = 1
    # into a 0 now and then.
    dt = p.dtype if p.dtype.itemsize >= 4 else float32
    u = backend.random_uniform(p.shape, dt, generator_rng(generator, backend, "bernoulli"))
    return _make((u < p).astype(p.dtype), backend, None)


def _normal_operand(value: Any, name: str) -> Any:
    if isinstance(value, Tensor):
        if not is_floating(value.dtype):
            raise DTypeError(f"normal: {name} must be floating-point, got {value.dtype.name}")
        return value
    return _args.number("normal", name, value, finite=True)


@allocates
def normal(
    mean: Tensor | float = 0.0, std: Tensor | float = 1.0, size: Any = None, *,
    generator: Generator | None = None, dtype: Any = None, device: DeviceLike = None,
) -> Tensor:  # fmt: skip
    """Normal draws with the given mean and standard deviation, in PyTorch's forms:
    `normal(mean_tensor, std_tensor)` (broadcast together), `normal(mean_tensor, std=1.0)`,
    `normal(mean, std_tensor)`, and `normal(mean, std, size)` with two numbers."""
    mean, std = _normal_operand(mean, "mean"), _normal_operand(std, "std")
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if tensors and size is not None:
        raise ArgumentError(f"normal: size={size!r} goes with a number mean and std only")
    if not tensors and size is None:
        raise ArgumentError("normal with a number mean and std needs size=")
    if isinstance(std, Tensor):
        negative = std.data < 0
        if bool(negative.any()):
            raise ArgumentError(
                f"normal: std must be non-negative, got {_first(std.data, negative)}"
            )
    elif std < 0:
        raise ArgumentError(f"normal: std must be non-negative, got {std!r}")
    if tensors:
        backend = _one_backend(tensors)
        if device is not None and get_backend(device) is not backend:
            raise DeviceError(
                f"normal: device='{device}' but the tensors are on '{backend.device}'"
            )
        dt = to_dtype(dtype) or backend.xp.result_type(*(t.dtype for t in tensors))
        shape = _broadcast_shape(mean, std, backend)
    else:
        backend, dt = get_backend(device), to_dtype(dtype) or default_float()
        shape = _args.shape("normal", size if isinstance(size, (tuple, list)) else (size,))
    if not is_floating(dt):
        raise DTypeError(f"normal draws floating-point numbers; dtype {dt.name} cannot hold them")
    z = backend.random_normal(shape, dt, generator_rng(generator, backend, "normal"))
    m = mean.data if isinstance(mean, Tensor) else mean
    s = std.data if isinstance(std, Tensor) else std
    return _make((z * s + m).astype(dt), backend, None)


def _one_backend(tensors: list[Tensor]) -> Backend:
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise DeviceError(
            f"normal: mean and std are on different devices {sorted(map(str, devices))}"
        )
    return tensors[0]._backend


def _broadcast_shape(mean: Any, std: Any, backend: Backend) -> tuple[int, ...]:
    shapes = [t.shape for t in (mean, std) if isinstance(t, Tensor)]
    try:
        return tuple(backend.xp.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(
            f"normal: mean and std shapes {shapes[0]} and {shapes[-1]} do not broadcast"
        ) from None
