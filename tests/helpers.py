"""Helpers shared by the op tests: float64 leaves, derivative checks, NumPy comparisons."""

from __future__ import annotations

import numpy as np

import gpugrad as gg


def leaf(array, device, contiguous=True, requires_grad=True):
    """A float64 leaf holding its own copy of `array`; a non-contiguous view (Fortran order,
    same values) when `contiguous` is False."""
    array = np.array(array, dtype=np.float64)
    if not contiguous:
        array = np.ascontiguousarray(array.T).T
    t = gg.as_tensor(array, device=device)
    return t.requires_grad_() if requires_grad else t


def check(fn, *inputs):
    """First and second derivatives of fn against finite differences."""
    assert gg.gradcheck(fn, inputs)
    assert gg.gradgradcheck(fn, inputs)


def same(t, expected):
    """The tensor equals the NumPy reference in shape and values."""
    got = t.numpy()
    assert got.shape == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def torch_or_skip():
    """PyTorch for a comparison test, which skips cleanly where PyTorch is not installed
    (gradchecks and error tables never need it, so they stay in separate tests)."""
    import pytest

    return pytest.importorskip("torch")


def torch_fn(torch, path):
    """A PyTorch function named by its dotted path ("special.erfc"), so tables can name
    PyTorch's functions without importing PyTorch."""
    target = torch
    for part in path.split("."):
        target = getattr(target, part)
    return target
