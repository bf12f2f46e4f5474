"""The shared argument checks (gpugrad._args): what passes, and how a refusal is worded."""

import re

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import _args


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_size_accepts_python_and_numpy_integers(value):
    got = _args.size("Layer", "width", value)
    assert got == 3 and type(got) is int


@pytest.mark.parametrize("value", [3.0, 2.5, True, "3", None, np.float32(3)])
def test_size_refuses_other_types_naming_them(value):
    pattern = rf"Layer: width must be an int, got {re.escape(repr(value))}"
    with pytest.raises(gg.ArgumentTypeError, match=pattern):
        _args.size("Layer", "width", value)


def test_size_minimum():
    assert _args.size("Pool", "padding", 0, minimum=0) == 0
    with pytest.raises(gg.ArgumentError, match=r"Layer: width must be an int >= 1, got 0"):
        _args.size("Layer", "width", 0)


def test_sizes_take_an_int_or_one_per_dimension():
    assert _args.sizes("Conv2d", "stride", 2, 2) == (2, 2)
    assert _args.sizes("Conv2d", "stride", [1, np.int32(3)], 2) == (1, 3)
    with pytest.raises(gg.ArgumentError, match=r"stride must be an int or 2 ints, got \(1, 2, 3\)"):
        _args.sizes("Conv2d", "stride", (1, 2, 3), 2)
    with pytest.raises(gg.ArgumentError, match=r"stride must be >= 1, got \(1, 0\)"):
        _args.sizes("Conv2d", "stride", (1, 0), 2)
    with pytest.raises(gg.ArgumentTypeError, match=r"got 1.5"):
        _args.sizes("Conv2d", "stride", (1, 1.5), 2)


@pytest.mark.parametrize(
    "bounds, value, words",
    [
        (dict(low=0), -1, r">= 0"),
        (dict(low=0, low_open=True), 0, r"> 0"),
        (dict(high=1, high_open=True), 1, r"< 1"),
        (dict(low=0, high=1), 1.5, r"in \[0, 1\]"),
        (dict(low=0, high=1, high_open=True), 1.0, r"in \[0, 1\)"),
        (dict(low=0, high=1, low_open=True), 0, r"in \(0, 1\]"),
        (dict(), float("nan"), r"a number"),
    ],
)
def test_number_words_its_range(bounds, value, words):
    with pytest.raises(gg.ArgumentError, match=rf"Opt: lr must be {words}, got {value!r}"):
        _args.number("Opt", "lr", value, **bounds)


@pytest.mark.parametrize("value", [0, 0.5, 1, np.float32(0.25), np.int64(1)])
def test_number_returns_accepted_values_unchanged(value):
    assert _args.number("Opt", "p", value, low=0, high=1) is value


@pytest.mark.parametrize("value", ["0.1", None, True, [0.1], gg.tensor(0.1)])
def test_number_refuses_non_numbers(value):
    with pytest.raises(gg.ArgumentTypeError, match=r"Opt: lr must be a real number"):
        _args.number("Opt", "lr", value, low=0)


def test_choice():
    assert _args.choice("Loss", "reduction", "sum", ("mean", "sum")) == "sum"
    with pytest.raises(gg.ArgumentError, match=r"one of 'mean', 'sum', got 'avg'"):
        _args.choice("Loss", "reduction", "avg", ("mean", "sum"))
    with pytest.raises(gg.ArgumentError, match=r"got None"):
        _args.choice("Loss", "reduction", None, ("mean", "sum"))
