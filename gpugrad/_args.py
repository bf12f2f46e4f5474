"""Argument checks shared by every public function: creation, random draws, data loading,
layers, losses and optimizers.

One place decides what a valid size, probability, hyperparameter or option is, and words the
error: every message names the owner (`Linear`, `SGD`, `cross_entropy`), the argument and the
value it got. A value of the wrong Python type raises ArgumentTypeError (a TypeError), a value
of the right type outside its range ArgumentError (a ValueError). Each check returns the value
it accepted, so a caller can check and assign in one line.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Any

from .errors import ArgumentError, ArgumentTypeError

__all__ = [
    "MAX_ELEMENTS",
    "MAX_SEED",
    "callable_",
    "choice",
    "flag",
    "integer",
    "number",
    "seed",
    "shape",
    "size",
    "sizes",
]

MAX_SEED = 2**64 - 1
# The most elements a tensor may have: its bytes (8 per element at most) must fit an index.
MAX_ELEMENTS = (2**63 - 1) // 8


def integer(owner: str, name: str, value: Any) -> int:
    """`value` as a Python int, for ints and NumPy integers only: a bool, a float (even 3.0)
    or a string is a mistake, not a size."""
    if type(value) is int:  # the common case, without the slower ABC check below
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(
            f"{owner}: {name} must be an int, got {value!r} ({type(value).__name__})"
        )
    return operator.index(value)


def size(owner: str, name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer at least `minimum` (a layer width, a channel count, a kernel size)."""
    number_ = integer(owner, name, value)
    if number_ < minimum:
        raise ArgumentError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
    if number_ > MAX_ELEMENTS:
        raise ArgumentError(f"{owner}: {name} {value!r} is more than an array can hold")
    return number_


def sizes(owner: str, name: str, value: Any, dims: int, *, minimum: int = 1) -> tuple[int, ...]:
    """An int (repeated `dims` times) or a sequence of `dims` ints, each at least `minimum`
    (kernel_size, stride, padding, dilation)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != dims:
            raise ArgumentError(f"{owner}: {name} must be an int or {dims} ints, got {value!r}")
        items = tuple(integer(owner, name, v) for v in value)
    else:
        items = (integer(owner, name, value),) * dims
    if any(v < minimum for v in items):
        raise ArgumentError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return items


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The words for a range: 'in [0, 1)', '>= 0', '> 0'."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}"


def number(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = False,
) -> Any:
    """A real number (not a bool, not NaN) within [low, high] (an end is left out with
    `low_open` / `high_open`; None leaves that side unbounded; `finite` refuses ±inf).
    Returns `value` unchanged."""
    kind = type(value)  # a float or an int skips the slower ABC check (bool is its own type)
    if (
        kind is not float
        and kind is not int
        and (isinstance(value, bool) or not isinstance(value, numbers.Real))
    ):
        raise ArgumentTypeError(
            f"{owner}: {name} must be a real number, got {value!r} ({type(value).__name__})"
        )
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if finite and math.isinf(value):
        raise ArgumentError(f"{owner}: {name} must be finite, got {value!r}")
    if math.isnan(value) or below or above:
        bounded = low is not None or high is not None
        what = _interval(low, high, low_open, high_open) if bounded else "a number"
        raise ArgumentError(f"{owner}: {name} must be {what}, got {value!r}")
    return value


def choice(owner: str, name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """One of `allowed` (an option such as a reduction). Returns `value`."""
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ArgumentError(f"{owner}: {name} must be one of {options}, got {value!r}")
    return value


def flag(owner: str, name: str, value: Any) -> bool:
    """A bool option (`shuffle`, `drop_last`): 1 or "yes" are not flags."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(
            f"{owner}: {name} must be True or False, got {value!r} ({type(value).__name__})"
        )
    return value


def callable_(owner: str, name: str, value: Any) -> Any:
    """A function (a collate_fn, a hook, a closure). Returns `value`."""
    if not callable(value):
        raise ArgumentTypeError(
            f"{owner}: {name} must be callable, got {value!r} ({type(value).__name__})"
        )
    return value


def shape(owner: str, value: tuple[Any, ...]) -> tuple[int, ...]:
    """A shape given as `f(2, 3)` or `f((2, 3))` (the tuple of positional arguments), as a
    tuple of non-negative ints: `zeros(2.5)` is refused rather than truncated to (2,)."""
    if len(value) == 1 and isinstance(value[0], (tuple, list)):
        value = tuple(value[0])
    for n in value:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise ArgumentTypeError(f"{owner}: sizes must be integers, got {value!r}")
    dims = tuple(operator.index(n) for n in value)
    if any(n < 0 for n in dims):
        raise ArgumentError(f"{owner}: sizes must be non-negative, got {value!r}")
    if math.prod(dims) > MAX_ELEMENTS or any(n > MAX_ELEMENTS for n in dims):
        # NumPy would raise a bare ValueError ("Maximum allowed dimension exceeded").
        raise ArgumentError(
            f"{owner}: sizes {value!r} ask for more elements than an array can hold "
            f"(at most {MAX_ELEMENTS})"
        )
    return dims


def seed(owner: str, value: Any) -> int:
    """A random seed: an integer in [0, 2**64)."""
    message = f"{owner}: seed must be an integer in [0, 2**64), got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(message)
    if not 0 <= int(value) <= MAX_SEED:
        raise ArgumentError(message)
    return int(value)
