"""Creation functions refuse sizes and ranges they cannot honour, with typed errors that name
the offending value (one table), and still take every valid spelling."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg

CREATION_ERRORS = [
    (lambda: gg.zeros(2.5), gg.ArgumentTypeError, r"2\.5"),
    (lambda: gg.zeros(-1), gg.ArgumentError, "-1"),
    (lambda: gg.zeros((2, -3)), gg.ArgumentError, "-3"),
    (lambda: gg.zeros(2, "3"), gg.ArgumentTypeError, "'3'"),
    (lambda: gg.zeros(True), gg.ArgumentTypeError, "True"),
    (lambda: gg.ones(3, 1.0), gg.ArgumentTypeError, r"1\.0"),
    (lambda: gg.empty(-2), gg.ArgumentError, "-2"),
    (lambda: gg.full((2, -1), 0.0), gg.ArgumentError, "-1"),
    (lambda: gg.full(1.5, 0.0), gg.ArgumentTypeError, r"1\.5"),
    (lambda: gg.rand(-1), gg.ArgumentError, "-1"),
    (lambda: gg.randn(2.0), gg.ArgumentTypeError, r"2\.0"),
    (lambda: gg.arange(0, 10, 0), gg.ArgumentError, "step 0"),
    (lambda: gg.arange(0, 10, -1), gg.ArgumentError, "-1"),
    (lambda: gg.arange(5, 0), gg.ArgumentError, "end 0"),
    (lambda: gg.arange(0, float("inf")), gg.ArgumentError, "inf"),
    (lambda: gg.arange(0, float("nan")), gg.ArgumentError, "nan"),
    (lambda: gg.arange("a"), gg.ArgumentTypeError, "'a'"),
    (lambda: gg.linspace(0, 1, -1), gg.ArgumentError, "-1"),
    (lambda: gg.linspace(0, 1, 2.5), gg.ArgumentTypeError, r"2\.5"),
    (lambda: gg.linspace(0, float("nan"), 3), gg.ArgumentError, "nan"),
    (lambda: gg.eye(-1), gg.ArgumentError, "-1"),
    (lambda: gg.eye(2, 1.5), gg.ArgumentTypeError, r"1\.5"),
    (lambda: gg.randint(5, 2), gg.ArgumentError, "low=5, high=2"),
    (lambda: gg.randint(3, 3), gg.ArgumentError, "low=3, high=3"),
    (lambda: gg.randint(0), gg.ArgumentError, "high=0"),
    (lambda: gg.randint(0.5, 2), gg.ArgumentTypeError, r"0\.5"),
    (lambda: gg.randint(0, 5, (2, -1)), gg.ArgumentError, "-1"),
    (lambda: gg.randint(0, 5, 2.5), gg.ArgumentTypeError, r"2\.5"),
    (lambda: gg.manual_seed(1.5), gg.ArgumentTypeError, r"1\.5"),
]


@pytest.mark.parametrize(("call", "error", "message"), CREATION_ERRORS)
def test_creation_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_typed_errors_are_also_the_builtin_kinds():
    # Code written against PyTorch catches TypeError for a float size, ValueError for a bad value.
    with pytest.raises(TypeError):
        gg.zeros(2.5)
    with pytest.raises(ValueError):
        gg.zeros(-1)


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: gg.zeros(2, 3), (2, 3)),
        (lambda: gg.zeros((2, 3)), (2, 3)),
        (lambda: gg.zeros([2, 3]), (2, 3)),
        (lambda: gg.zeros(np.int64(4)), (4,)),
        (lambda: gg.zeros(0), (0,)),
        (lambda: gg.zeros(()), ()),
        (lambda: gg.ones(3, np.int32(2)), (3, 2)),
        (lambda: gg.full(3, 1.0), (3,)),
        (lambda: gg.full((), 1.0), ()),
        (lambda: gg.rand(0, 4), (0, 4)),
        (lambda: gg.randint(3, size=(2,)), (2,)),
        (lambda: gg.randint(-3, -1, 5), (5,)),
        (lambda: gg.arange(0), (0,)),
        (lambda: gg.arange(3, 3), (0,)),
        (lambda: gg.arange(10, 0, -3), (4,)),
        (lambda: gg.arange(0.0, 1.0, 0.25), (4,)),
        (lambda: gg.arange(np.int64(3)), (3,)),
        (lambda: gg.linspace(0, 1, 0), (0,)),
        (lambda: gg.linspace(0, 1, np.int64(5)), (5,)),
        (lambda: gg.eye(0), (0, 0)),
        (lambda: gg.eye(2, 3), (2, 3)),
    ],
)
def test_valid_sizes_still_work(make, shape):
    assert make().shape == shape


def test_arange_counts_down():
    np.testing.assert_array_equal(gg.arange(10, 0, -3).numpy(), [10, 7, 4, 1])


def test_randint_bounds_hold():
    values = gg.randint(-3, -1, (500,)).numpy()
    assert set(np.unique(values)) == {-3, -2}
