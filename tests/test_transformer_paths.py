"""The fast paths a transformer step runs through: the one-node layer_norm, softmax forward and
backward in one work array (and the backend's row reductions they use), embedding's backward
by sorting, and a stack of rows times one matrix as 2-D products. Each is gradchecked (first
and second derivatives, float64) on shapes with size-1 axes, and compared with PyTorch where
it is installed."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.nn import Embedding
from gpugrad.nn.layers import _LayerNorm, _rows_summed_by_index, _sum_by_sorting

LAYER_NORM_CASES = [
    ((5,), (2, 3, 5)),
    ((1, 4), (3, 1, 4)),
    ((3,), (1, 1, 3)),
    ((2, 3), (2, 3)),
    ((4,), (4,)),
]


# --- layer_norm -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, x_shape", LAYER_NORM_CASES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_one_node_derivatives(device, rng, shape, x_shape, affine):
    x = leaf(rng.standard_normal(x_shape) * 2 + 0.5, device)
    params = []
    if affine in ("both", "weight"):
        params.append(leaf(rng.standard_normal(shape), device))
    if affine == "both":
        params.append(leaf(rng.standard_normal(shape), device))

    def fn(x, *ps):
        return F.layer_norm(x, shape, *ps)

    assert isinstance(fn(x, *params).grad_fn, _LayerNorm)
    check(fn, x, *params)
    # Through a nonlinearity the second derivative must still hold.
    check(lambda x, *ps: fn(x, *ps).tanh(), x, *params)


def test_layer_norm_weight_only_gradient_without_input_gradient(device, rng):
    x = leaf(rng.standard_normal((3, 4)), device, requires_grad=False)
    w = leaf(rng.standard_normal(4), device)
    check(lambda w: F.layer_norm(x, (4,), w), w)


@pytest.mark.parametrize("dtype", ["float16"])
def test_layer_norm_other_cases_keep_the_composition(device, dtype):
    x = gg.ones(2, 4, device=device, dtype=dtype, requires_grad=True)
    assert not isinstance(F.layer_norm(x, (4,)).grad_fn, _LayerNorm)
    broadcast_weight = gg.ones(1, 4, device=device, dtype=dtype)
    assert not isinstance(F.layer_norm(x, (4,), broadcast_weight).grad_fn, _LayerNorm)


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_layer_norm_one_node_matches_torch(rng, dtype, tol):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((4, 7, 16)) * 3 + 1).astype(dtype)
    w, b = rng.standard_normal(16).astype(dtype), rng.standard_normal(16).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    ours = [gg.tensor(a, requires_grad=True) for a in (x, w, b)]
    F.layer_norm(ours[0], (16,), ours[1], ours[2]).backward(gg.tensor(g))
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    torch.nn.functional.layer_norm(theirs[0], (16,), theirs[1], theirs[2]).backward(
        torch.from_numpy(g)
    )
    for name, a, t in zip(("x", "weight", "bias"), ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol, err_msg=name)


# --- softmax / log_softmax backward -----------------------------------------------------------
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis", [((3, 4), -1), ((2, 1, 5), 0), ((2, 3, 1), 1), ((4,), 0)])
def test_softmax_backward_matches_torch(rng, name, shape, axis):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(np.float32) * 4
    g = rng.standard_normal(shape).astype(np.float32)
    ours = gg.tensor(x, requires_grad=True)
    getattr(F, name)(ours, axis=axis).backward(gg.tensor(g))
    theirs = torch.tensor(x, requires_grad=True)
    getattr(torch.nn.functional, name)(theirs, dim=axis).backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis", [((2, 1, 5), 0), ((2, 3, 4), 1), ((3, 1), -1)])
def test_softmax_derivatives(device, rng, name, shape, axis):
    check(lambda x: getattr(F, name)(x, axis=axis) * x, leaf(rng.standard_normal(shape), device))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, axis", [((16, 4, 8, 64), -1), ((5, 65), 1), ((6, 3), 0)])
def test_softmax_forward_matches_torch(rng, name, dtype, shape, axis):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal(shape) * 30).astype(dtype)
    along = np.moveaxis(x, axis, -1)
    along[(0,) * (x.ndim - 1)][1:] = -np.inf  # one row: a single value, and -inf elsewhere
    ours = getattr(F, name)(gg.tensor(x), axis=axis).numpy()
    theirs = getattr(torch.nn.functional, name)(torch.from_numpy(x), dim=axis).numpy()
    tol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize(
    "shape, axis",
    [((3, 4, 64), -1), ((3, 4, 64), 1), ((3, 4, 64), 0), ((7,), 0), ((0, 5), 1),
     ((256, 10), 1), ((256, 10), -1), ((64, 1), 1), ((100, 16), 1)],  # many short rows too
)  # fmt: skip
def test_row_reductions_equal_numpys(device, rng, dtype, shape, axis):
    backend = gg.tensor(0.0, device=device)._backend
    x = rng.standard_normal(shape).astype(dtype)
    if x.ndim == 2 and x.shape[0] > 5:  # ties, a NaN and infinities keep NumPy's answer
        x[1, :] = 0.5
        x[2, -1] = np.nan
        x[3, 0], x[4, :] = np.inf, -np.inf
    data = backend.asarray(x)
    np.testing.assert_array_equal(
        backend.to_numpy(backend.max_along(data, axis)),
        x.max(axis=axis, keepdims=True, initial=-np.inf),
    )
    total = backend.to_numpy(backend.sum_along(data, axis))
    assert total.shape == x.sum(axis=axis, keepdims=True).shape and total.dtype == x.dtype
    tol = {"float16": 1e-2, "float32": 1e-5, "float64": 1e-13}[dtype]
    np.testing.assert_allclose(total, x.sum(axis=axis, keepdims=True), rtol=tol, atol=tol * 10)


# --- embedding backward ----------------------------------------------------------------------
def test_sorting_is_chosen_only_where_rows_repeat():
    assert _sum_by_sorting(np, 1024, 65)
    assert not _sum_by_sorting(np, 100, 50_000)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index_shape, rows", [((16, 64), 65), ((1, 7), 3), ((5,), 1), ((0,), 4)])
def test_rows_summed_by_index_equal_the_scattered_sums(rng, dtype, index_shape, rows):
    indices = rng.integers(0, rows, index_shape)
    g = rng.standard_normal((*index_shape, 6)).astype(dtype)
    got = _rows_summed_by_index(np, (rows, 6), indices, g)
    assert got.dtype == g.dtype and got.shape == (rows, 6)
    exact = np.zeros((rows, 6))
    np.add.at(exact, indices, g.astype(np.float64))
    tol = 1e-5 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got, exact, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("padding_idx", [None, 1])
def test_embedding_with_repeated_rows_derivatives(device, rng, padding_idx):
    m = Embedding(3, 2, padding_idx=padding_idx, device=device).double()
    idx = gg.tensor(rng.integers(0, 3, (4, 5)), device=device)  # 20 lookups into 3 rows
    # The padding row gets no gradient by design, so it is checked by value instead.
    if padding_idx is None:
        check(lambda w: (m(idx) * m(idx)).tanh(), m.weight)
    m(idx).sum().backward()
    counts = np.bincount(idx.numpy().ravel(), minlength=3).astype(np.float64)
    if padding_idx is not None:
        counts[padding_idx] = 0
    np.testing.assert_allclose(m.weight.grad.numpy(), np.repeat(counts[:, None], 2, 1))


def test_embedding_backward_matches_torch(rng):
    torch = pytest.importorskip("torch")
    weight = rng.standard_normal((65, 32)).astype(np.float32)
    idx = rng.integers(0, 65, (16, 64))
    g = rng.standard_normal((16, 64, 32)).astype(np.float32)
    ours = gg.tensor(weight, requires_grad=True)
    F.embedding(gg.tensor(idx), ours).backward(gg.tensor(g))
    theirs = torch.tensor(weight, requires_grad=True)
    torch.nn.functional.embedding(torch.from_numpy(idx), theirs).backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-5)


# --- a stack of rows times one matrix --------------------------------------------------------
@pytest.mark.parametrize(
    "a_shape, b_shape", [((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (4, 2)), ((1, 1, 4), (4, 1)),
                         ((2, 3, 4), (4,))],
)  # fmt: skip
def test_stack_times_matrix_derivatives(device, rng, a_shape, b_shape):
    a, b = leaf(rng.standard_normal(a_shape), device), leaf(rng.standard_normal(b_shape), device)
    check(lambda a, b: a @ b, a, b)
    check(lambda a, b: (a @ b).tanh(), a, b)


def test_stack_times_matrix_matches_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((16, 64, 128)).astype(np.float32)
    b = rng.standard_normal((128, 96)).astype(np.float32)
    g = rng.standard_normal((16, 64, 96)).astype(np.float32)
    ours = [gg.tensor(x, requires_grad=True) for x in (a, b)]
    (ours[0] @ ours[1]).backward(gg.tensor(g))
    theirs = [torch.tensor(x, requires_grad=True) for x in (a, b)]
    (theirs[0] @ theirs[1]).backward(torch.from_numpy(g))
    for name, x, t in zip(("a", "b"), ours, theirs):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-3,
                                   err_msg=name)  # fmt: skip
