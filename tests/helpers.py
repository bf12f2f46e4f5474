"""Helpers shared by the tests: float64 leaves, derivative checks, NumPy comparisons, work on
threads at once and in a forked child."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

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


def run_at_once(*targets: Callable[[], None], timeout: float = 120.0) -> None:
    """Each target on a thread of its own, all started together; fails if one has not finished
    within `timeout` seconds (daemon threads: a hung one does not hold up the test run)."""
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"


def _put_result(queue: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    queue.put(target(*args))


def in_forked_child(target: Callable[..., Any], *args: Any, timeout: float = 60.0) -> Any:
    """target(*args) computed in a child made by fork() (as a DataLoader worker is made)."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_put_result, args=(queue, target, args))
    child.start()
    result = queue.get(timeout=timeout)
    child.join(timeout=timeout)
    assert child.exitcode == 0
    return result
