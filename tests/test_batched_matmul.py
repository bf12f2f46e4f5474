"""Stacks of small products shared over the CPUs by matrix (kernels/cpu/bmm.cpp through
cpu_kernels.batched_matmul): NumPy's own BLAS call per matrix, so NumPy's bits, on every layout
it takes, and NumPy's matmul (None) for every layout it does not.

These skip where the kernels cannot be built or NumPy's BLAS is not an ILP64 OpenBLAS.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.backend import blas_threads, cpu_kernels, get_backend, native

needs_kernel = pytest.mark.skipif(
    native._compiler() is None
    or native.library() is None
    or blas_threads.gemm_address("float32") is None,
    reason="no compiled kernels, or NumPy's BLAS is not an ILP64 OpenBLAS",
)


def _normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: str = "float32"):
    return rng.standard_normal(shape).astype(dtype)


def _fused_heads(rng: np.random.Generator, dtype: str = "float32"):
    """q, k, v as attention takes them from one projection: (batch, heads, tokens, width)
    views of a (batch, tokens, 3·heads·width) array, whose batch axes do not merge."""
    qkv = _normal(rng, (5, 12, 3 * 4 * 8), dtype)
    return [
        qkv[..., i * 32 : (i + 1) * 32].reshape(5, 12, 4, 8).transpose(0, 2, 1, 3) for i in range(3)
    ]


def _cases(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    q, k, v = _fused_heads(rng)
    p = _normal(rng, (5, 4, 12, 12))
    stack = _normal(rng, (6, 7, 9))
    return {
        "contiguous": (stack, _normal(rng, (6, 9, 5))),
        "a transposed": (_normal(rng, (6, 9, 7)).swapaxes(-1, -2), _normal(rng, (6, 9, 5))),
        "b transposed": (stack, _normal(rng, (6, 5, 9)).swapaxes(-1, -2)),
        "both transposed": (
            _normal(rng, (6, 9, 7)).swapaxes(-1, -2),
            _normal(rng, (6, 5, 9)).swapaxes(-1, -2),
        ),
        "heads of a fused projection": (k, np.ascontiguousarray(q.swapaxes(-1, -2))),
        "weights times fused values": (p.swapaxes(-1, -2), v),
        "padded rows": (_normal(rng, (6, 7, 12))[..., :9], _normal(rng, (6, 9, 5))),
        "every other matrix": (_normal(rng, (12, 7, 9))[::2], _normal(rng, (6, 9, 5))),
        "reversed batch": (stack[::-1], _normal(rng, (6, 9, 5))),
        "one matrix for all": (
            np.broadcast_to(_normal(rng, (7, 9)), (6, 7, 9)),
            _normal(rng, (6, 9, 7)),
        ),
        "three batch axes, merging": (_normal(rng, (2, 3, 4, 6, 5)), _normal(rng, (2, 3, 4, 5, 3))),
        "size-1 batch axes": (_normal(rng, (1, 6, 1, 7, 9)), _normal(rng, (1, 6, 1, 9, 5))),
        "float64": (stack.astype(np.float64), _normal(rng, (6, 9, 5), "float64")),
    }


@needs_kernel
@pytest.mark.parametrize(
    "case",
    [
        "contiguous",
        "a transposed",
        "b transposed",
        "both transposed",
        "heads of a fused projection",
        "weights times fused values",
        "padded rows",
        "every other matrix",
        "reversed batch",
        "one matrix for all",
        "three batch axes, merging",
        "size-1 batch axes",
        "float64",
    ],
)
def test_the_kernel_gives_numpys_bits(case: str, rng) -> None:
    a, b = _cases(rng)[case]
    got = cpu_kernels.batched_matmul(a, b)
    assert got is not None, case
    expected = np.matmul(a, b)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@needs_kernel
def test_attention_shaped_stacks_on_many_matrices(rng) -> None:
    # The GPT benchmark's shapes: 64 products of 64 x 32 by 32 x 64, shared over the threads.
    q = _normal(rng, (16, 4, 64, 32))
    k = _normal(rng, (16, 4, 64, 32))
    np.testing.assert_array_equal(
        cpu_kernels.batched_matmul(q, np.ascontiguousarray(k.swapaxes(-1, -2))),
        np.matmul(q, k.swapaxes(-1, -2)),
    )


@needs_kernel
def test_numpy_runs_what_the_kernel_does_not_take(rng) -> None:
    a = _normal(rng, (6, 7, 9))
    b = _normal(rng, (6, 9, 5))
    big = _normal(rng, (2, 80, 80))
    square = _normal(rng, (3, 7, 7))  # its middle matrix meets its own transpose
    others = {
        "broadcast batch": (a, b[:1]),
        "a 2-D operand": (a, b[0]),
        "a row vector": (a[:, :1], b),
        "a column result": (a, b[..., :1]),
        "more than a thread's work": (big, big.swapaxes(-1, -2).copy()),
        "one matrix": (a[:1], b[:1]),
        "mixed dtypes": (a, b.astype(np.float64)),
        "float16": (a.astype(np.float16), b.astype(np.float16)),
        "a matrix times its own transpose": (a, a.swapaxes(-1, -2)),
        "one pair of them its own transpose": (square.swapaxes(-1, -2)[::-1], square),
        "strided columns": (_normal(rng, (6, 7, 18))[..., ::2], b),
        "batch axes that do not merge, three": (
            _normal(rng, (2, 3, 4, 6, 5)).transpose(1, 0, 2, 3, 4)[:, :, ::2],
            _normal(rng, (3, 2, 2, 5, 3)),
        ),
    }
    for name, (x, y) in others.items():
        assert cpu_kernels.batched_matmul(x, y) is None, name


@needs_kernel
def test_matmul_and_its_gradients_through_the_kernel_match_numpys(rng) -> None:
    # gg.matmul on stacks: the backend sends forward and backward products to the kernel.
    a = _normal(rng, (3, 4, 6, 5))
    b = _normal(rng, (3, 4, 5, 7))
    g = _normal(rng, (3, 4, 6, 7))
    x, y = gg.tensor(a, requires_grad=True), gg.tensor(b, requires_grad=True)
    gg.matmul(x, y).backward(gg.tensor(g))
    assert get_backend("cpu").matmul(a, b) is not None
    np.testing.assert_array_equal(gg.matmul(x, y).numpy(), np.matmul(a, b))
    np.testing.assert_array_equal(x.grad.numpy(), np.matmul(g, b.swapaxes(-1, -2)))
    np.testing.assert_array_equal(y.grad.numpy(), np.matmul(a.swapaxes(-1, -2), g))
