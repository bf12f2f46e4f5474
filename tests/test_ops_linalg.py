"""Matrix products: matmul / @ with NumPy's rules, dot and outer; values, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg

# (shape of a, shape of b): every case of NumPy's matmul rules.
MATMUL_SHAPES = [
    ((4,), (4,)),  # 1-D @ 1-D: a scalar
    ((3,), (3, 4)),  # 1-D @ 2-D
    ((3, 4), (4,)),  # 2-D @ 1-D
    ((3, 4), (4, 2)),  # 2-D @ 2-D
    ((2, 3, 4), (4, 5)),  # batched @ matrix
    ((2, 1, 3, 4), (5, 4, 2)),  # broadcast batches
    ((3, 4), (2, 4, 5)),  # matrix @ batched
    ((4,), (2, 4, 3)),  # 1-D @ 3-D
    ((2, 3, 4), (4,)),  # 3-D @ 1-D
    ((1, 3), (3, 1)),  # size-1 axes
    ((2, 1, 3), (1, 3, 2)),  # size-1 batch axes on both sides
]
IDS = [f"{a}@{b}" for a, b in MATMUL_SHAPES]


def _leaf(a, device):
    return gg.tensor(a, dtype=gg.float64, device=device, requires_grad=True)


@pytest.mark.parametrize(("sa", "sb"), MATMUL_SHAPES, ids=IDS)
def test_matmul_values_match_numpy(sa, sb, device, rng):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    x, y = gg.tensor(a, dtype=gg.float64, device=device), gg.tensor(b, device=device).double()
    expected = np.matmul(a, b)
    for out in (x @ y, gg.matmul(x, y), x.matmul(y)):
        assert isinstance(out, gg.Tensor)
        assert out.shape == expected.shape
        assert out.dtype == np.float64
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_matmul_float32_stays_float32(device, rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    x = gg.tensor(a, dtype=gg.float32, device=device, requires_grad=True)
    w = gg.tensor(b, dtype=gg.float32, device=device, requires_grad=True)
    out = x @ w
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-5, atol=1e-5)
    out.backward(gg.ones_like(out))
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), np.ones((3, 2)) @ b.T, rtol=1e-5)
    np.testing.assert_allclose(w.grad.numpy(), a.T @ np.ones((3, 2)), rtol=1e-5)


@pytest.mark.parametrize(("sa", "sb"), MATMUL_SHAPES, ids=IDS)
def test_matmul_gradcheck(sa, sb, device, rng):
    x, y = _leaf(rng.standard_normal(sa), device), _leaf(rng.standard_normal(sb), device)
    assert gg.gradcheck(lambda s, t: s @ t, (x, y))
    assert gg.gradgradcheck(lambda s, t: s @ t, (x, y))


@pytest.mark.parametrize(("sa", "sb"), MATMUL_SHAPES, ids=IDS)
def test_matmul_gradient_matches_formula(sa, sb, device, rng):
    # An independent reference: the gradient of sum(v * (a @ b)) by NumPy, via einsum on the
    # broadcast operands, summed back to each operand's shape.
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    v = rng.standard_normal(np.matmul(a, b).shape)
    x, y = _leaf(a, device), _leaf(b, device)
    (x @ y).backward(gg.tensor(v, dtype=gg.float64, device=device))
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    v2 = v
    if b.ndim == 1:
        v2 = np.expand_dims(v2, -1)
    if a.ndim == 1:
        v2 = np.expand_dims(v2, -2)
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    A = np.broadcast_to(a2, batch + a2.shape[-2:])
    B = np.broadcast_to(b2, batch + b2.shape[-2:])
    ga = np.einsum("...ij,...kj->...ik", v2, B)
    gb = np.einsum("...ki,...kj->...ij", A, v2)

    def reduce_to(g, shape2, shape):
        while g.ndim > len(shape2):
            g = g.sum(axis=0)
        axes = tuple(i for i, n in enumerate(shape2) if n == 1 and g.shape[i] != 1)
        return g.sum(axis=axes, keepdims=True).reshape(shape)

    np.testing.assert_allclose(x.grad.numpy(), reduce_to(ga, a2.shape, sa), rtol=1e-10)
    np.testing.assert_allclose(y.grad.numpy(), reduce_to(gb, b2.shape, sb), rtol=1e-10)


def test_matmul_non_contiguous_operands(device, rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((5, 4))
    x = gg.as_tensor(a.T, device=device).requires_grad_()  # (3, 4), transposed strides
    y = gg.as_tensor(b.T, device=device).requires_grad_()  # (4, 5)
    np.testing.assert_allclose((x @ y).numpy(), a.T @ b.T, rtol=1e-12)
    assert gg.gradcheck(lambda s, t: s @ t, (x, y))
    assert gg.gradgradcheck(lambda s, t: s @ t, (x, y))


@pytest.mark.parametrize(
    ("sa", "sb"), [((3, 4), (4, 2)), ((4,), (2, 4, 3)), ((2, 1, 3, 4), (5, 4, 2))]
)
def test_matmul_constant_operand_gets_no_gradient(sa, sb, device, rng):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    # Left operand constant: the right one still gets its gradient.
    x, y = gg.tensor(a, dtype=gg.float64, device=device), _leaf(b, device)
    out = x @ y
    out.backward(gg.ones_like(out))
    assert x.grad is None
    assert y.grad is not None and y.grad.shape == sb
    assert gg.gradcheck(lambda s, t: s @ t, (x, y))
    assert gg.gradgradcheck(lambda s, t: s @ t, (x, y))
    # Right operand constant.
    x, y = _leaf(a, device), gg.tensor(b, dtype=gg.float64, device=device)
    out = x @ y
    out.backward(gg.ones_like(out))
    assert y.grad is None
    assert x.grad is not None and x.grad.shape == sa
    assert gg.gradcheck(lambda s, t: s @ t, (x, y))


def test_matmul_skips_gradient_of_constant_operand(device, rng):
    # needs_grad(i) is False for the constant, so its (costly) product is never formed.
    x = gg.tensor(rng.standard_normal((3, 4)), dtype=gg.float64, device=device)
    w = _leaf(rng.standard_normal((4, 2)), device)
    out = x @ w
    node = out.grad_fn
    assert not node.needs_grad(0) and node.needs_grad(1)
    grads = node.backward(x._backend, x._backend.xp.ones((3, 2)), x.data, w.data)
    assert grads[0] is None and grads[1].shape == (4, 2)


def test_matmul_with_arrays_and_lists(device, rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    x = _leaf(a, device)
    out = x @ b.tolist()
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones((3, 2)) @ b.T, rtol=1e-6)


# --- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sa", "sb"),
    [
        ((3, 4), (5, 2)),
        ((4,), (5,)),
        ((3, 4), (3,)),
        ((2, 3, 4), (2, 5, 4)),
        ((2, 3, 4), (3, 4, 5)),
    ],
)
def test_matmul_shape_mismatch_names_both_shapes(sa, sb, device):
    x = gg.ones(*sa, device=device, requires_grad=True)
    y = gg.ones(*sb, device=device)
    with pytest.raises(gg.ShapeError) as info:
        x @ y
    assert str(sa) in str(info.value) and str(sb) in str(info.value)
    assert "MatMul" in str(info.value) or "matmul" in str(info.value)


def test_matmul_0d_operand_raises(device):
    x = gg.ones(3, 4, device=device)
    s = gg.tensor(2.0, device=device)
    for make in (lambda: x @ s, lambda: s @ x, lambda: gg.matmul(s, s), lambda: x @ 2.0,
                 lambda: 2.0 @ x):  # fmt: skip
        with pytest.raises(gg.ShapeError, match="at least one dimension"):
            make()


# --- dot and outer -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sa", "sb"), [((5,), (5,)), ((3, 4), (4, 2)), ((3,), (3, 2)), ((3, 4), (4,))]
)
def test_dot(sa, sb, device, rng):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    x, y = _leaf(a, device), _leaf(b, device)
    for out in (gg.dot(x, y), x.dot(y)):
        expected = np.dot(a, b)
        assert out.shape == np.shape(expected)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    assert gg.gradcheck(gg.dot, (x, y))
    assert gg.gradgradcheck(gg.dot, (x, y))


def test_dot_errors(device):
    x = gg.ones(2, 3, 4, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(2, 3, 4\)"):
        gg.dot(x, gg.ones(4, device=device))
    with pytest.raises(gg.ShapeError, match=r"\(5,\)"):
        gg.dot(gg.ones(4, device=device), gg.ones(5, device=device))


@pytest.mark.parametrize(("sa", "sb"), [((3,), (4,)), ((1,), (5,)), ((2, 2), (3,))])
def test_outer(sa, sb, device, rng):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    x, y = _leaf(a, device), _leaf(b, device)
    out = gg.outer(x, y)
    expected = np.outer(a, b)  # NumPy flattens the inputs too
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    assert gg.gradcheck(gg.outer, (x, y))
    assert gg.gradgradcheck(gg.outer, (x, y))


def test_outer_non_contiguous(device, rng):
    a, b = rng.standard_normal((3, 2)), rng.standard_normal(4)
    x = gg.as_tensor(a.T, device=device).requires_grad_()  # (2, 3), transposed strides
    y = _leaf(b, device)
    np.testing.assert_allclose(gg.outer(x, y).numpy(), np.outer(a.T, b), rtol=1e-12)
    assert gg.gradcheck(gg.outer, (x, y))
