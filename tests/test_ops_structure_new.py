"""The structural ops added for PyTorch ports: tril/triu, diag/diagonal/trace, roll, einsum and
bmm, sort/argsort/topk, scatter/scatter_add/index_add, masked_fill(_). Values against PyTorch,
first and second derivatives against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, leaf, torch_or_skip

import gpugrad as gg


def _t(array):
    """The array as a PyTorch tensor, for the comparison tests (they skip without PyTorch)."""
    return torch_or_skip().tensor(np.asarray(array))


# --- triangles and diagonals ------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 1, -1, 5, -5])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (2, 1, 3, 4), (1, 1)], ids=str)
def test_tril_triu(shape, k, device, rng):
    x_np = rng.standard_normal(shape)
    x = leaf(x_np, device)
    for name in ("tril", "triu"):
        expected = getattr(np, name)(x_np, k)
        np.testing.assert_array_equal(getattr(gg, name)(x, k).numpy(), expected)
        np.testing.assert_array_equal(getattr(x, name)(k).numpy(), expected)
        check(lambda x, name=name: getattr(gg, name)(x, k), x)


def test_tril_keeps_infinities_of_an_attention_mask(device):
    scores = gg.full((3, 3), -float("inf"), device=device)
    np.testing.assert_array_equal(gg.triu(scores, 1).numpy(), np.triu(np.full((3, 3), -np.inf), 1))


@pytest.mark.parametrize(
    ("shape", "offset", "axis1", "axis2"),
    [((4, 4), 0, 0, 1), ((3, 5), 2, 0, 1), ((3, 5), -1, 0, 1), ((2, 3, 4), 1, 2, 0),
     ((2, 3, 4), 0, -1, -2), ((3, 3), 7, 0, 1)],
)  # fmt: skip
def test_diagonal_and_trace(shape, offset, axis1, axis2, device, rng):
    x_np = rng.standard_normal(shape)
    x = leaf(x_np, device)
    got = gg.diagonal(x, offset, axis1, axis2)
    expected = np.diagonal(x_np, offset, axis1, axis2)
    np.testing.assert_array_equal(got.numpy(), expected)
    np.testing.assert_array_equal(x.diagonal(offset, axis1, axis2).numpy(), expected)
    np.testing.assert_allclose(
        gg.trace(x, offset, axis1, axis2).numpy(),
        np.trace(x_np, offset, axis1, axis2),
        rtol=1e-12,
    )
    check(lambda x: gg.diagonal(x, offset, axis1, axis2), x)
    check(lambda x: x.trace(offset, axis1, axis2), x)


@pytest.mark.parametrize("k", [0, 2, -1])
@pytest.mark.parametrize("shape", [(4,), (3, 4), (1,), (4, 4)], ids=str)
def test_diag_both_ways(shape, k, device, rng):
    x_np = rng.standard_normal(shape)
    x = leaf(x_np, device)
    expected = np.diag(x_np, k)
    np.testing.assert_array_equal(gg.diag(x, k).numpy(), expected)
    np.testing.assert_array_equal(x.diag(k).numpy(), expected)
    check(lambda x: gg.diag(x, k), x)


def test_trace_of_a_matrix_matches_torch(device, rng):
    torch = torch_or_skip()
    x_np = rng.standard_normal((3, 5))
    np.testing.assert_allclose(
        leaf(x_np, device).trace().numpy(), torch.trace(_t(x_np)).numpy(), rtol=1e-12
    )


# --- roll -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "shift", "axis"),
    [((5,), 2, None), ((3, 4), -1, 1), ((3, 4), (1, -2), (0, 1)), ((3, 4), 7, None),
     ((2, 1, 3), 1, 0)],
)  # fmt: skip
def test_roll(shape, shift, axis, device, rng):
    x_np = rng.standard_normal(shape)
    x = leaf(x_np, device)
    expected = np.roll(x_np, shift, axis)
    np.testing.assert_array_equal(gg.roll(x, shift, axis).numpy(), expected)
    np.testing.assert_array_equal(x.roll(shift, axis).numpy(), expected)
    check(lambda x: gg.roll(x, shift, axis), x)


# --- einsum and bmm ---------------------------------------------------------------------------
EINSUMS = [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk", [(3, 4), (4, 2)]),  # implicit output
    ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ii->i", [(3, 3)]),  # a repeated letter: the diagonal
    ("ii", [(3, 3)]),  # the trace
    ("ij->", [(3, 4)]),  # letters summed away
    ("ij->ji", [(3, 4)]),
    ("iij->j", [(2, 2, 3)]),
    ("...ij,...jk->...ik", [(1, 2, 3), (4, 3, 2)]),  # broadcasting ellipsis
    ("...i,...i", [(2, 3), (3,)]),
    ("i,i->i", [(1,), (3,)]),  # a size-1 letter broadcasts
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),  # attention scores
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
]


@pytest.mark.parametrize(("subscripts", "shapes"), EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum_values_and_gradients(subscripts, shapes, device, rng):
    arrays = [rng.standard_normal(s) for s in shapes]
    operands = [leaf(a, device) for a in arrays]
    got = gg.einsum(subscripts, *operands)
    expected = np.einsum(subscripts, *arrays)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gg.einsum(subscripts, operands).numpy(), expected, rtol=1e-12)
    check(lambda *xs: gg.einsum(subscripts, *xs), *operands)


def test_einsum_gradient_matches_torch_for_a_constant_operand(device, rng):
    torch = torch_or_skip()
    a_np, b_np = rng.standard_normal((3, 3)), rng.standard_normal((3,))
    a, b = leaf(a_np, device), leaf(b_np, device, requires_grad=False)
    gg.einsum("ii,i->i", a, b).sum().backward()
    ta = torch.tensor(a_np, requires_grad=True)
    torch.einsum("ii,i->i", ta, _t(b_np)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12)
    assert b.grad is None


def test_bmm(device, rng):
    a_np, b_np = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    a, b = leaf(a_np, device), leaf(b_np, device)
    np.testing.assert_allclose(gg.bmm(a, b).numpy(), np.matmul(a_np, b_np), rtol=1e-12)
    np.testing.assert_allclose(a.bmm(b).numpy(), gg.bmm(a, b).numpy(), rtol=0)
    check(gg.bmm, a, b)


# --- sort, argsort, topk ----------------------------------------------------------------------
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize(("shape", "axis"), [((6,), -1), ((3, 5), 0), ((2, 1, 4), -1), ((), 0)])
def test_sort_and_argsort(shape, axis, descending, device, rng):
    torch = torch_or_skip()
    x_np = rng.integers(-3, 3, shape).astype(np.float64)  # ties, so stability shows
    x = leaf(x_np, device)
    values, indices = torch.sort(_t(x_np), dim=axis, descending=descending, stable=True)
    np.testing.assert_array_equal(gg.sort(x, axis, descending).numpy(), values.numpy())
    np.testing.assert_array_equal(x.sort(axis, descending=descending).numpy(), values.numpy())
    got = gg.argsort(x, axis, descending=descending)
    assert got.dtype == np.int64 and not got.requires_grad
    np.testing.assert_array_equal(got.numpy(), indices.numpy())
    np.testing.assert_array_equal(x.argsort(axis, descending).numpy(), indices.numpy())


def test_sort_puts_nan_where_torch_does(device):
    torch = torch_or_skip()
    x_np = np.array([1.0, np.nan, -2.0, 3.0])
    x = gg.as_tensor(x_np, device=device)
    for descending in (False, True):
        expected = torch.sort(_t(x_np), descending=descending, stable=True)
        np.testing.assert_array_equal(gg.sort(x, descending=descending).numpy(), expected.values)
        np.testing.assert_array_equal(
            gg.argsort(x, descending=descending).numpy(), expected.indices
        )


@pytest.mark.parametrize("descending", [False, True])
def test_sort_gradients(descending, device, rng):
    x = leaf(rng.standard_normal((3, 4)), device)
    check(lambda x: gg.sort(x, 0, descending=descending), x)
    check(lambda x: gg.sort(x, descending=descending), x)


TOPKS = [((6,), 3, -1), ((3, 5), 2, 0), ((2, 4), 4, 1), ((2, 4), 0, 1)]


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize(("shape", "k", "axis"), TOPKS)
def test_topk_gradients(shape, k, axis, largest, device, rng):
    x_np = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)  # no ties
    check(lambda x: gg.topk(x, k, axis, largest=largest).values, leaf(x_np, device))


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize(("shape", "k", "axis"), TOPKS)
def test_topk(shape, k, axis, largest, device, rng):
    torch = torch_or_skip()
    x_np = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)  # no ties
    x = leaf(x_np, device)
    result = gg.topk(x, k, axis, largest=largest)
    expected = torch.topk(_t(x_np), k, axis, largest=largest)
    values, indices = result  # a pair ...
    assert result.values is values and result.indices is indices  # ... with named fields
    np.testing.assert_array_equal(values.numpy(), expected.values.numpy())
    np.testing.assert_array_equal(indices.numpy(), expected.indices.numpy())
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(x.topk(k, axis, largest).values.numpy(), values.numpy())


def test_topk_with_ties_takes_the_first_positions(device):
    x = gg.tensor([1.0, 3.0, 2.0, 3.0, 3.0], device=device)
    np.testing.assert_array_equal(gg.topk(x, 2).indices.numpy(), [1, 3])
    np.testing.assert_array_equal(gg.topk(x, 2, largest=False).indices.numpy(), [0, 2])


# --- scatter, scatter_add, index_add ----------------------------------------------------------
SCATTERS = [
    ((3, 4), 0, [[0, 1, 2, 0], [2, 0, 1, 1]], (2, 4)),
    ((3, 4), 1, [[3, 0], [1, 2], [0, 3]], (3, 2)),
    ((3, 4), 0, [[1, 2]], (2, 3)),  # index smaller than src and x on the other axis
    ((2, 3, 2), -1, [[[1], [0], [1]], [[0], [0], [1]]], (2, 3, 2)),
]


@pytest.mark.parametrize(("shape", "axis", "index", "src_shape"), SCATTERS)
def test_scatter_add_gradients(shape, axis, index, src_shape, device, rng):
    x, src = leaf(rng.standard_normal(shape), device), leaf(rng.standard_normal(src_shape), device)
    idx = gg.tensor(index, device=device)
    check(lambda x, s: gg.scatter_add(x, axis, idx, s), x, src)


@pytest.mark.parametrize(("shape", "axis", "index", "src_shape"), SCATTERS)
def test_scatter_add(shape, axis, index, src_shape, device, rng):
    torch = torch_or_skip()
    x_np, src_np = rng.standard_normal(shape), rng.standard_normal(src_shape)
    x, src = leaf(x_np, device), leaf(src_np, device)
    idx = gg.tensor(index, device=device)
    t_idx = torch.tensor(index)
    got = gg.scatter_add(x, axis, idx, src)
    expected = torch.scatter_add(_t(x_np), axis, t_idx, _t(src_np)).numpy()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(x.scatter_add(axis, idx, src).numpy(), expected, rtol=1e-12)


def test_scatter_gradients(device, rng):
    x, src = leaf(rng.standard_normal((3, 4)), device), leaf(rng.standard_normal((2, 5)), device)
    idx = gg.tensor([[0, 1, 2, 0], [2, 0, 1, 1]], device=device)  # no target written twice
    check(lambda x, s: gg.scatter(x, 0, idx, s), x, src)


def test_scatter_values_and_gradients_match_torch(device, rng):
    torch = torch_or_skip()
    x_np, src_np = rng.standard_normal((3, 4)), rng.standard_normal((2, 5))
    index = [[0, 1, 2, 0], [2, 0, 1, 1]]  # no target written twice
    x, src = leaf(x_np, device), leaf(src_np, device)
    idx = gg.tensor(index, device=device)
    expected = torch.scatter(_t(x_np), 0, torch.tensor(index), _t(src_np)).numpy()
    np.testing.assert_array_equal(gg.scatter(x, 0, idx, src).numpy(), expected)
    np.testing.assert_array_equal(x.scatter(0, idx, src).numpy(), expected)
    # A scalar src, and the gradients against torch's
    expected = torch.scatter(_t(x_np), 0, torch.tensor(index), 7.0).numpy()
    np.testing.assert_array_equal(gg.scatter(x, 0, idx, 7.0).numpy(), expected)
    src_np = src_np[:, :4]  # (torch's backward refuses a src larger than the index)
    src = leaf(src_np, device)
    gg.scatter(x, 0, idx, src).sum().backward()
    tx, ts = torch.tensor(x_np, requires_grad=True), torch.tensor(src_np, requires_grad=True)
    torch.scatter(tx, 0, torch.tensor(index), ts).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_array_equal(src.grad.numpy(), ts.grad.numpy())


INDEX_ADDS = [((4, 3), 0, [0, 2, 0]), ((2, 5), 1, [4, 4, 1, 0]), ((3,), 0, [1])]


@pytest.mark.parametrize("alpha", [1, 2.5])
@pytest.mark.parametrize(("shape", "axis", "index"), INDEX_ADDS)
def test_index_add_gradients(shape, axis, index, alpha, device, rng):
    source_shape = list(shape)
    source_shape[axis] = len(index)
    x = leaf(rng.standard_normal(shape), device)
    source = leaf(rng.standard_normal(source_shape), device)
    idx = gg.tensor(index, device=device)
    check(lambda x, s: gg.index_add(x, axis, idx, s, alpha=alpha), x, source)


@pytest.mark.parametrize("alpha", [1, 2.5])
@pytest.mark.parametrize(("shape", "axis", "index"), INDEX_ADDS)
def test_index_add(shape, axis, index, alpha, device, rng):
    torch = torch_or_skip()
    source_shape = list(shape)
    source_shape[axis] = len(index)
    x_np, source_np = rng.standard_normal(shape), rng.standard_normal(source_shape)
    x, source = leaf(x_np, device), leaf(source_np, device)
    idx = gg.tensor(index, device=device)
    expected = torch.index_add(_t(x_np), axis, torch.tensor(index), _t(source_np), alpha=alpha)
    got = gg.index_add(x, axis, idx, source, alpha=alpha)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        x.index_add(axis, idx, source, alpha=alpha).numpy(), expected.numpy(), rtol=1e-12
    )


# --- masked_fill ------------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "mask_shape"), [((3, 4), (3, 4)), ((2, 3, 4), (3, 1)),
                                                   ((3, 4), (4,)), ((3, 4), ())])  # fmt: skip
def test_masked_fill(shape, mask_shape, device, rng):
    x_np, mask_np = rng.standard_normal(shape), rng.random(mask_shape) < 0.5
    x, mask = leaf(x_np, device), gg.as_tensor(mask_np, device=device)
    for value in (-np.inf, 2.5):
        expected = np.where(mask_np, value, x_np)
        np.testing.assert_array_equal(gg.masked_fill(x, mask, value).numpy(), expected)
        np.testing.assert_array_equal(x.masked_fill(mask, value).numpy(), expected)
    check(lambda x: gg.masked_fill(x, mask, 0.5), x)
    value = leaf(1.5, device)  # a 0-d tensor value gets a gradient too
    check(lambda x, v: x.masked_fill(mask, v), x, value)


def test_masked_fill_keeps_the_dtype(device):
    x = gg.tensor([1, 2, 3], device=device)
    out = x.masked_fill(x > 1, 9.7)
    assert out.dtype == np.int64  # the value is cast to x's dtype, as PyTorch does
    np.testing.assert_array_equal(out.numpy(), [1, 9, 9])


def test_masked_fill_in_place(device, rng):
    x_np = rng.standard_normal((3, 4))
    x = gg.as_tensor(x_np.copy(), device=device)
    mask = x > 0
    version = x.version
    assert x.masked_fill_(mask, 0.0) is x
    np.testing.assert_array_equal(x.numpy(), np.where(x_np > 0, 0.0, x_np))
    assert x.version == version + 1
    # Recorded when part of a graph: the gradient skips the filled places.
    a = leaf(x_np, device)
    b = a * 2
    b.masked_fill_(mask, -1.0)
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.where(x_np > 0, 0.0, 2.0))
    # ... and a backward through a tensor saved before the fill raises.
    c = leaf(x_np, device) * 1
    d = c * c
    c.masked_fill_(c > 0, 0.0)
    with pytest.raises(gg.InplaceError):
        d.sum().backward()
