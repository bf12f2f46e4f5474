"""NumPy's OpenBLAS running its parallel work on the compiled kernels' pool
(gpugrad/backend/blas_threads.py, kernels/cpu/parallel.cpp): the same products, bit for bit,
from threads at once, after fork, with fewer pool threads than OpenBLAS asks for, and with
the sharing switched off.

These skip where the kernels cannot be built or NumPy's BLAS is not an OpenBLAS with the
threads callback (0.3.27 and later).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import in_forked_child, run_at_once

from gpugrad.backend import blas_threads, cpu_kernels, native


def _can_share() -> bool:
    if native._compiler() is None or native.library() is None:
        return False
    before = blas_threads.shared()
    try:
        return blas_threads.share(True)
    finally:
        blas_threads.share(before)


needs_sharing = pytest.mark.skipif(
    not _can_share(), reason="no compiled kernels, or NumPy's BLAS has no threads callback"
)


@pytest.fixture
def sharing():
    """The pool shared with OpenBLAS for the test, and the setting before restored after."""
    before = blas_threads.shared()
    assert blas_threads.share(True)
    yield
    blas_threads.share(before)


def _products(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Operand pairs large enough for OpenBLAS to split over threads, in both float types and
    with transposed views (other kernels), plus a matrix-vector product."""
    pairs = []
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal((700, 300)).astype(dtype)
        b = rng.standard_normal((300, 500)).astype(dtype)
        pairs += [(a, b), (a.T, a), (b, b.T), (a, rng.standard_normal(300).astype(dtype))]
    return pairs


def _compute(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    return [a @ b for a, b in pairs]


@needs_sharing
def test_products_are_the_same_bits_with_and_without_the_shared_pool(rng) -> None:
    pairs = _products(rng)
    blas_threads.share(False)
    assert not blas_threads.shared()
    own = _compute(pairs)
    assert blas_threads.share(True) and blas_threads.shared()
    for expected, got in zip(own, _compute(pairs)):
        np.testing.assert_array_equal(got, expected)


@needs_sharing
def test_products_and_kernels_from_python_threads_at_once(rng, sharing) -> None:
    # Products and split kernels from several threads: one at a time gets the pool, the others
    # run on threads of their own, and nothing waits for ever.
    pairs = _products(rng)
    expected = _compute(pairs)
    x = (rng.standard_normal(1 << 18) * 3).astype(np.float32)
    cdf = cpu_kernels.gelu_and_cdf(x)[1]
    failures: list[str] = []

    def work(index: int) -> None:
        for _ in range(5):
            if index % 2 and not np.array_equal(cpu_kernels.gelu_and_cdf(x)[1], cdf):
                failures.append(f"gelu on thread {index}")
            for want, got in zip(expected, _compute(pairs)):
                if not np.array_equal(want, got):
                    failures.append(f"product on thread {index}")

    run_at_once(*(functools.partial(work, i) for i in range(4)))
    assert not failures


@needs_sharing
def test_products_in_a_forked_child(rng, sharing) -> None:
    # The child starts without the pool's helpers (a DataLoader worker): it makes its own.
    a = rng.standard_normal((600, 400)).astype(np.float32)
    b = rng.standard_normal((400, 500)).astype(np.float32)
    np.testing.assert_array_equal(in_forked_child(np.matmul, a, b), a @ b)


_CHILD = """
import numpy as np
from gpugrad.backend import blas_threads, native
rng = np.random.default_rng(0)
a = rng.standard_normal((800, 300)).astype(np.float32)
b = rng.standard_normal((300, 600)).astype(np.float32)
before = a @ b
native.library()
print(blas_threads.shared(), np.array_equal(a @ b, before), np.array_equal(a.T @ a, a.T @ a))
"""


def _run_child(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@needs_sharing
def test_a_pool_smaller_than_openblas_is_not_shared() -> None:
    # One pool thread cannot run OpenBLAS's parts at once: OpenBLAS keeps its own threads (and
    # the products their bits).
    shared, same, again = _run_child(GPUGRAD_CPU_THREADS="1")
    assert (shared, same, again) == ("False", "True", "True")


@needs_sharing
def test_the_switch_leaves_openblas_its_own_threads() -> None:
    shared, same, _ = _run_child(**{blas_threads.ENV_SWITCH: "0"})
    assert (shared, same) == ("False", "True")
    shared, same, _ = _run_child(**{blas_threads.ENV_SWITCH: "1"})
    assert (shared, same) == ("True", "True")


def test_nothing_is_shared_without_the_kernels(monkeypatch) -> None:
    monkeypatch.setattr(native, "library", lambda: None)
    assert blas_threads.share(True) is False


@needs_sharing
def test_lu_on_one_thread_and_products_on_another(rng, sharing) -> None:
    # OpenBLAS's parallel LU (solve, inv, det) posts work to its own workers directly, past
    # the callback: the pool's jobs take other slots of OpenBLAS's per-thread state.
    system = _normal_system(rng)
    pairs = _products(rng)
    blas_threads.share(False)
    solution, products = np.linalg.solve(*system), _compute(pairs)
    blas_threads.share(True)
    failures: list[str] = []

    def solve() -> None:
        for _ in range(15):
            if not np.array_equal(np.linalg.solve(*system), solution):
                failures.append("solve")

    def multiply() -> None:
        for _ in range(15):
            if not all(np.array_equal(x, y) for x, y in zip(_compute(pairs), products)):
                failures.append("product")

    run_at_once(solve, multiply)
    assert not failures


def _normal_system(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.standard_normal((500, 500)) + 500 * np.eye(500)
    return a, rng.standard_normal((500, 40))


@needs_sharing
def test_share_off_and_on_again(rng) -> None:
    before = blas_threads.shared()
    try:
        assert blas_threads.share(False) is False and not blas_threads.shared()
        assert blas_threads.share(True) is True and blas_threads.shared()
    finally:
        blas_threads.share(before)
