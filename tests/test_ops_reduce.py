"""Reductions: values against NumPy, gradients by gradcheck/gradgradcheck, ties, zeros, errors."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg

# (shape, axis) pairs: None, int, negative int, tuples (in any order), size-1 axes.
CASES = [
    ((5,), None),
    ((5,), 0),
    ((5,), -1),
    ((5,), (0,)),
    ((3, 4), None),
    ((3, 4), 0),
    ((3, 4), -1),
    ((3, 4), (1, 0)),
    ((2, 3, 4), None),
    ((2, 3, 4), 1),
    ((2, 3, 4), -2),
    ((2, 3, 4), (2, 0)),
    ((2, 3, 4), (-1, 0, 1)),
    ((1, 4), None),
    ((1, 4), 0),
    ((1, 4), 1),
    ((3, 1, 2), None),
    ((3, 1, 2), 1),
    ((3, 1, 2), (0, 1)),
    ((3, 1, 2), -1),
]
CASE_IDS = [f"{s}-{a}" for s, a in CASES]

# A smaller set for the (slower) gradient checks; still every kind of axis and a size-1 axis.
GRAD_CASES = [
    ((5,), None),
    ((3, 4), 1),
    ((3, 4), -2),
    ((2, 3, 4), (0, 2)),
    ((2, 3, 4), None),
    ((3, 1, 2), 1),
    ((3, 1, 2), (0, -1)),
    ((1, 4), -1),
]
GRAD_IDS = [f"{s}-{a}" for s, a in GRAD_CASES]


def _logsumexp_ref(a, axis=None, keepdims=False):
    """NumPy reference, shifted by the max like any careful implementation."""
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis if axis is not None else None)


# name -> (NumPy reference, extra keyword arguments)
REFERENCES = {
    "sum": (np.sum, {}),
    "mean": (np.mean, {}),
    "var": (np.var, {}),
    "std": (np.std, {}),
    "var_ddof1": (np.var, {"ddof": 1}),
    "std_ddof1": (np.std, {"ddof": 1}),
    "max": (np.max, {}),
    "min": (np.min, {}),
    "prod": (np.prod, {}),
    "logsumexp": (_logsumexp_ref, {}),
}


def _op(name):
    return name.removesuffix("_ddof1")


def _count(shape, axis):
    """How many elements feed each result of a reduction over `axis`."""
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


def _distinct(rng, shape):
    """Values with no ties and gaps far wider than gradcheck's eps (for max/min)."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.25 + rng.uniform(-0.05, 0.05, n)).reshape(shape)


def _away_from_zero(rng, shape):
    """Magnitudes in [0.5, 1.5] with random signs (for prod)."""
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def _inputs_for(name, rng, shape):
    op = _op(name)
    if op in ("max", "min"):
        return _distinct(rng, shape)
    if op == "prod":
        return _away_from_zero(rng, shape)
    return rng.standard_normal(shape)


def _leaf(a, device):
    return gg.tensor(a, dtype=gg.float64, device=device, requires_grad=True)


def _call(name, form, x, axis, keepdims):
    op = _op(name)
    kwargs = dict(REFERENCES[name][1])
    if form == "function":
        return getattr(gg, op)(x, axis=axis, keepdims=keepdims, **kwargs)
    return getattr(x, op)(axis=axis, keepdims=keepdims, **kwargs)


# --- forward values ----------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["function", "method"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(("shape", "axis"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("name", list(REFERENCES))
def test_reduction_values_match_numpy(name, shape, axis, keepdims, form, device, rng):
    ref, kwargs = REFERENCES[name]
    if kwargs.get("ddof") == 1 and _count(shape, axis) < 2:
        pytest.skip("ddof=1 over a single element divides by zero")
    a = _inputs_for(name, rng, shape)
    out = _call(name, form, gg.tensor(a, dtype=gg.float64, device=device), axis, keepdims)
    expected = np.asarray(ref(a, axis=axis, keepdims=keepdims, **kwargs))
    assert isinstance(out, gg.Tensor)
    assert out.shape == expected.shape
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_reduction_keeps_float32(name, device, rng):
    a = _inputs_for(name, rng, (3, 4)).astype(np.float32)
    x = gg.tensor(a, device=device, requires_grad=True)
    y = x * 1.0
    y.retain_grad()
    out = _call(name, "method", y, 1, False)
    assert out.dtype == np.float32
    ref, kwargs = REFERENCES[name]
    np.testing.assert_allclose(out.numpy(), ref(a, axis=1, **kwargs), rtol=1e-5, atol=1e-6)
    out.backward(gg.ones_like(out))
    # The gradient flowing between ops keeps the tensor's dtype, not only the leaf's.
    assert y.grad.dtype == np.float32
    assert x.grad.dtype == np.float32
    (g,) = gg.grad(_call(name, "method", x, 1, False).sum(), [x], create_graph=True)
    assert g.dtype == np.float32


def test_var_std_default_ddof_is_zero(device, rng):
    a = rng.standard_normal((4, 5))
    x = gg.tensor(a, dtype=gg.float64, device=device)
    np.testing.assert_allclose(x.var().numpy(), np.var(a), rtol=1e-12)
    np.testing.assert_allclose(x.std(axis=0).numpy(), np.std(a, axis=0), rtol=1e-12)
    # ddof=1 differs by N/(N-1): the test would fail if the default were PyTorch's.
    assert not np.allclose(x.var(axis=1).numpy(), np.var(a, axis=1, ddof=1))
    np.testing.assert_allclose(
        gg.var(x, axis=1, ddof=1).numpy(), np.var(a, axis=1, ddof=1), rtol=1e-12
    )


def test_max_returns_values_only(device, rng):
    a = _distinct(rng, (3, 4))
    x = gg.tensor(a, dtype=gg.float64, device=device)
    for out, ref in [(x.max(axis=1), a.max(axis=1)), (x.min(axis=0), a.min(axis=0))]:
        assert isinstance(out, gg.Tensor)
        np.testing.assert_array_equal(out.numpy(), ref)


def test_non_contiguous_input_values(device, rng):
    a = rng.standard_normal((4, 3))
    x = gg.as_tensor(a.T, device=device)  # a (3, 4) view with swapped strides on cpu
    for name in ("sum", "mean", "var", "max", "prod", "logsumexp"):
        ref = REFERENCES[name][0]
        out = getattr(x, name)(axis=1)
        np.testing.assert_allclose(out.numpy(), ref(a.T, axis=1), rtol=1e-6, atol=1e-7)


# --- gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(("shape", "axis"), GRAD_CASES, ids=GRAD_IDS)
@pytest.mark.parametrize("name", list(REFERENCES))
def test_reduction_gradcheck(name, shape, axis, keepdims, device, rng):
    if "ddof1" in name and _count(shape, axis) < 2:
        pytest.skip("ddof=1 over a single element divides by zero")
    if _op(name) == "std" and _count(shape, axis) < 2:
        pytest.skip("std of one element is 0, where sqrt has no derivative")
    x = _leaf(_inputs_for(name, rng, shape), device)

    def fn(t):
        return _call(name, "function", t, axis, keepdims)

    assert gg.gradcheck(fn, (x,))
    assert gg.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("name", list(REFERENCES))
def test_reduction_gradcheck_non_contiguous(name, device, rng):
    a = _inputs_for(name, rng, (4, 3))
    x = gg.as_tensor(a.T, device=device).requires_grad_()

    def fn(t):
        return _call(name, "method", t, 0, False)

    assert gg.gradcheck(fn, (x,))
    assert gg.gradgradcheck(fn, (x,))


def test_reduction_gradient_of_chain(device, rng):
    # A reduction in the middle of a graph: mean over rows of a product, then a sum.
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((1, 4))
    x, w = _leaf(a, device), _leaf(b, device)
    assert gg.gradcheck(lambda s, t: (s * t).var(axis=0, ddof=1).sum(), (x, w))
    assert gg.gradgradcheck(lambda s, t: (s * t).logsumexp(axis=1).mean(), (x, w))


# --- max/min ties ------------------------------------------------------------------------------
def test_max_ties_split_gradient_evenly(device):
    x = gg.tensor([1.0, 3.0, 3.0], dtype=gg.float64, device=device, requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.5, 0.5])


def test_min_ties_split_gradient_evenly_along_axis(device):
    a = np.array([[2.0, 1.0, 1.0, 1.0], [0.0, 5.0, 0.0, 4.0]])
    x = gg.tensor(a, dtype=gg.float64, device=device, requires_grad=True)
    x.min(axis=1).backward(gg.tensor([3.0, 2.0], dtype=gg.float64, device=device))
    expected = [[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0]]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-15)


def test_max_ties_over_all_axes_keepdims(device):
    a = np.array([[4.0, 1.0], [4.0, 4.0]])
    x = gg.tensor(a, dtype=gg.float64, device=device, requires_grad=True)
    out = gg.max(x, keepdims=True)
    assert out.shape == (1, 1)
    out.backward(gg.ones_like(out))
    np.testing.assert_allclose(x.grad.numpy(), [[1 / 3, 0.0], [1 / 3, 1 / 3]], rtol=1e-15)


# --- prod with zeros ---------------------------------------------------------------------------
def _product_of_others(a, axis):
    """d prod / d a_i by brute force: the product of every other element of its slice."""
    moved = np.moveaxis(a, axis, -1)
    out = np.empty_like(moved)
    for idx in np.ndindex(moved.shape[:-1]):
        row = moved[idx]
        for i in range(row.size):
            out[(*idx, i)] = np.prod(np.delete(row, i))
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize(
    "values",
    [
        [2.0, 0.0, 3.0, -4.0],  # one zero: only it gets a gradient, the product of the others
        [2.0, 0.0, 3.0, 0.0],  # two zeros: every product of others contains a zero
        [0.0, 0.0, 0.0, 5.0],
        [2.0, -1.5, 3.0, 0.5],  # no zero
    ],
    ids=["one-zero", "two-zeros", "three-zeros", "no-zero"],
)
def test_prod_gradient_with_zeros(values, device):
    a = np.array(values)
    x = gg.tensor(a, dtype=gg.float64, device=device, requires_grad=True)
    out = x.prod()
    assert out.item() == np.prod(a)
    out.backward()
    expected = _product_of_others(a, 0)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-15)
    if values == [2.0, 0.0, 3.0, -4.0]:
        np.testing.assert_array_equal(expected, [0.0, -24.0, 0.0, 0.0])  # the brute force itself


def test_prod_gradient_with_zeros_along_axis(device):
    # Rows with no zero, one zero and two zeros, reduced along axis 1 and along axis 0.
    a = np.array([[1.5, -2.0, 3.0], [0.0, 2.0, -0.5], [0.0, 4.0, 0.0]])
    for axis in (1, 0):
        x = gg.tensor(a, dtype=gg.float64, device=device, requires_grad=True)
        gg.prod(x, axis=axis).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), _product_of_others(a, axis), rtol=1e-15)


def test_prod_gradcheck_and_gradgradcheck_at_zeros(device, rng):
    # prod is a polynomial, smooth at zero, so finite differences are right there, and the
    # second derivatives too: d²/dx_i dx_j at a zero x_j is not 0 but the product of the rest.
    a = _away_from_zero(rng, (4, 4))
    a[1, 1] = 0.0
    a[2, 0] = a[2, 3] = 0.0
    a[3, :3] = 0.0
    x = _leaf(a, device)
    assert gg.gradcheck(lambda t: t.prod(axis=1), (x,))
    assert gg.gradgradcheck(lambda t: t.prod(axis=1), (x,))
    y = _leaf(a[:2, :3], device)  # one zero over all axes
    assert gg.gradgradcheck(lambda t: t.prod(axis=(0, 1)), (y,))


# --- logsumexp ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_logsumexp_is_stable_for_large_values(scale, device):
    x = gg.tensor(np.full((2, 3), scale), dtype=gg.float64, device=device)
    out = x.logsumexp(axis=1)
    assert np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out.numpy(), scale + np.log(3), rtol=1e-14)
    total = gg.logsumexp(x)
    np.testing.assert_allclose(total.item(), scale + np.log(6), rtol=1e-14)


def test_logsumexp_large_mixed_values(device):
    a = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4 + 2.0, -1e4]])
    x = gg.tensor(a, dtype=gg.float64, device=device)
    out = x.logsumexp(axis=1, keepdims=True)
    expected = np.array([[1e4 + np.log1p(np.exp(-1.0))], [-1e4 + 2.0 + np.log1p(2 * np.exp(-2.0))]])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-14)


def test_logsumexp_float32_large_values(device):
    x = gg.tensor([1e4, 1e4, 1e4, 1e4], device=device)
    out = x.logsumexp()
    assert out.dtype == np.float32
    assert np.isfinite(out.item())
    np.testing.assert_allclose(out.item(), 1e4 + np.log(4), rtol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_logsumexp_gradient_is_softmax(scale, device, rng):
    a = rng.standard_normal((3, 4)) + scale
    x = gg.tensor(a, dtype=gg.float64, device=device, requires_grad=True)
    x.logsumexp(axis=1).sum().backward()
    e = np.exp(a - a.max(axis=1, keepdims=True))
    softmax = e / e.sum(axis=1, keepdims=True)
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy(), softmax, rtol=1e-12)


# --- cumsum ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "axis"),
    [((5,), None), ((5,), 0), ((3, 4), None), ((3, 4), 1), ((2, 3, 4), -2), ((3, 1, 2), 1)],
)
@pytest.mark.parametrize("form", ["function", "method"])
def test_cumsum_values_and_gradients(shape, axis, form, device, rng):
    a = rng.standard_normal(shape)
    x = _leaf(a, device)

    def fn(t):
        return gg.cumsum(t, axis=axis) if form == "function" else t.cumsum(axis=axis)

    out = fn(x)
    expected = np.cumsum(a, axis=axis)
    assert out.shape == expected.shape  # axis=None flattens, as NumPy does
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    assert gg.gradcheck(fn, (x,))
    assert gg.gradgradcheck(fn, (x,))


def test_cumsum_non_contiguous(device, rng):
    a = rng.standard_normal((4, 3))
    x = gg.as_tensor(a.T, device=device).requires_grad_()
    np.testing.assert_allclose(x.cumsum().numpy(), np.cumsum(a.T), rtol=1e-12)
    assert gg.gradcheck(lambda t: t.cumsum(axis=1), (x,))


# --- argmax / argmin / any / all -----------------------------------------------------------------
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(name, axis, keepdims, device, rng):
    a = _distinct(rng, (3, 4))
    x = gg.tensor(a, dtype=gg.float64, device=device, requires_grad=True)
    for out in (getattr(gg, name)(x, axis=axis, keepdims=keepdims),
                getattr(x, name)(axis=axis, keepdims=keepdims)):  # fmt: skip
        expected = getattr(np, name)(a, axis=axis, keepdims=keepdims)
        assert out.dtype == np.int64
        assert not out.requires_grad and out.grad_fn is None
        assert out.shape == np.shape(expected)
        np.testing.assert_array_equal(out.numpy(), expected)


def test_argmax_first_of_ties(device):
    x = gg.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], device=device)
    np.testing.assert_array_equal(x.argmax(axis=1).numpy(), [1, 0])
    np.testing.assert_array_equal(x.argmin(axis=1).numpy(), [0, 2])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)])
def test_any_all(axis, keepdims, device):
    a = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]])
    x = gg.tensor(a, device=device, requires_grad=True)
    for name in ("any", "all"):
        for out in (getattr(gg, name)(x, axis=axis, keepdims=keepdims),
                    getattr(x, name)(axis=axis, keepdims=keepdims)):  # fmt: skip
            expected = getattr(np, name)(a, axis=axis, keepdims=keepdims)
            assert out.dtype == np.bool_
            assert not out.requires_grad
            assert out.shape == np.shape(expected)
            np.testing.assert_array_equal(out.numpy(), expected)


# --- 0-d tensors and size-1 axes -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["sum", "mean", "var", "max", "min", "prod", "logsumexp"])
def test_reduction_of_0d_tensor(name, device):
    x = gg.tensor(1.5, dtype=gg.float64, device=device, requires_grad=True)
    ref = REFERENCES[name][0]
    for axis in (None, ()):
        out = getattr(x, name)(axis=axis)
        assert out.shape == ()
        np.testing.assert_allclose(out.numpy(), ref(np.array(1.5), axis=axis), rtol=1e-15)
        assert gg.gradcheck(lambda t, axis=axis: getattr(gg, name)(t, axis=axis), (x,))
    # As in PyTorch, a 0-d tensor takes axis 0 or -1 as "all of it"; other axes raise.
    for axis in (0, -1):
        np.testing.assert_allclose(getattr(gg, name)(x, axis=axis).numpy(), out.numpy())
    with pytest.raises(gg.ShapeError):
        getattr(gg, name)(x, axis=1)


def test_argmax_any_cumsum_of_0d_tensor(device):
    x = gg.tensor(-2.0, dtype=gg.float64, device=device, requires_grad=True)
    assert x.argmax().item() == 0 and x.argmin().shape == ()
    assert bool(x.any()) and bool(x.all())
    out = x.cumsum()
    assert out.shape == (1,)  # NumPy flattens a 0-d array into a 1-element one
    assert out.item() == -2.0
    assert gg.gradcheck(lambda t: t.cumsum(), (x,))


@pytest.mark.parametrize("name", ["sum", "mean", "var", "max", "min", "prod", "logsumexp"])
def test_reduction_over_size_one_axis_is_identity(name, device, rng):
    a = rng.standard_normal((3, 1, 2))
    x = _leaf(a, device)
    out = getattr(x, name)(axis=1)
    expected = np.zeros((3, 2)) if name == "var" else a[:, 0, :]
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-14, atol=1e-15)
    out.backward(gg.ones_like(out))
    expected_grad = np.zeros_like(a) if name == "var" else np.ones_like(a)
    np.testing.assert_allclose(x.grad.numpy(), expected_grad, rtol=1e-14)


# --- errors --------------------------------------------------------------------------------------
REDUCERS = ["sum", "mean", "var", "std", "max", "min", "prod", "logsumexp", "any", "all"]


@pytest.mark.parametrize("axis", [2, -3, (0, 2), 5])
@pytest.mark.parametrize("name", [*REDUCERS, "argmax", "argmin", "cumsum"])
def test_out_of_range_axis_raises(name, axis, device):
    if name in ("argmax", "argmin", "cumsum") and isinstance(axis, tuple):
        pytest.skip("takes a single axis")
    x = gg.ones(2, 3, device=device)
    with pytest.raises(gg.ShapeError, match=f"axis {axis if isinstance(axis, int) else 2}"):
        getattr(gg, name)(x, axis=axis)


@pytest.mark.parametrize("axis", [(0, 0), (1, -1), (0, 1, 1)])
@pytest.mark.parametrize("name", REDUCERS)
def test_repeated_axis_raises(name, axis, device):
    x = gg.ones(2, 3, device=device)
    with pytest.raises(gg.ShapeError, match="repeated axis"):
        getattr(x, name)(axis=axis)


@pytest.mark.parametrize("name", ["argmax", "argmin", "cumsum"])
def test_single_axis_ops_reject_tuples(name, device):
    x = gg.ones(2, 3, device=device)
    with pytest.raises(gg.ShapeError, match="single int axis"):
        getattr(gg, name)(x, axis=(0, 1))
