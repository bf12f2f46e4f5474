"""Argument checks shared by the creation functions, random draws and data loading.

Each check returns the argument in its plain Python form or raises an `ArgumentError`
(a bad value) or `ArgumentTypeError` (a bad type) whose message names the function, the
argument and what was given. Checking here, once, keeps every caller's messages alike.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError

MAX_SEED = 2**64 - 1


def _integer(value: Any) -> int | None:
    """`value` as an int when it is an integer (Python or NumPy, not bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_int(value: Any, name: str, where: str, least: int | None = None) -> int:
    """`value` as an int that is at least `least` (when given)."""
    number = _integer(value)
    if number is None:
        raise ArgumentTypeError(f"{where}: {name} must be an integer, got {value!r}")
    if least is not None and number < least:
        raise ArgumentError(f"{where}: {name} must be at least {least}, got {number}")
    return number


def check_size(size: tuple[Any, ...], where: str) -> tuple[int, ...]:
    """A shape given as `f(2, 3)` or `f((2, 3))`, as a tuple of non-negative ints.

    `zeros(2.5)` is refused rather than truncated to (2,), and so is a negative size.
    """
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    dims = tuple(_integer(n) for n in size)
    if any(n is None for n in dims):
        raise ArgumentTypeError(f"{where}: sizes must be integers, got {size!r}")
    if any(n < 0 for n in dims):  # type: ignore[operator]
        raise ArgumentError(f"{where}: sizes must be non-negative, got {size!r}")
    return dims  # type: ignore[return-value]


def check_number(value: Any, name: str, where: str) -> float:
    """`value` as a finite real number (int or float, not bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ArgumentTypeError(f"{where}: {name} must be a real number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ArgumentError(f"{where}: {name} must be finite, got {value!r}")
    return number


def check_probability(value: Any, name: str, where: str) -> float:
    """`value` as a float in [0, 1]."""
    p = check_number(value, name, where)
    if not 0.0 <= p <= 1.0:
        raise ArgumentError(f"{where}: {name} must be in [0, 1], got {value!r}")
    return p


def check_seed(seed: Any, where: str) -> int:
    """A seed: an integer in [0, 2**64)."""
    number = _integer(seed)
    message = f"{where}: seed must be an integer in [0, 2**64), got {seed!r}"
    if number is None:
        raise ArgumentTypeError(message)
    if not 0 <= number <= MAX_SEED:
        raise ArgumentError(message)
    return number
