"""The elementwise and reduction ops added for PyTorch ports: erfc, log2, log10, square, rsqrt,
reciprocal, floor/ceil/round/trunc, cumprod, amax/amin, linalg.vector_norm / Tensor.norm,
isclose/allclose, and var/std's correction=/unbiased=. Values against PyTorch (or NumPy),
first and second derivatives against finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import check, leaf, torch_fn, torch_or_skip

import gpugrad as gg

SHAPES = [(5,), (3, 4), (2, 1, 3), ()]

# name -> (gpugrad function, torch function, input range)
SMOOTH = {
    "erfc": (gg.erfc, "special.erfc", (-3.0, 3.0)),
    "log2": (gg.log2, "log2", (0.5, 3.0)),
    "log10": (gg.log10, "log10", (0.5, 3.0)),
    "square": (gg.square, "square", (-2.0, 2.0)),
    "rsqrt": (gg.rsqrt, "rsqrt", (0.5, 3.0)),
    "reciprocal": (gg.reciprocal, "reciprocal", (0.5, 3.0)),
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(SMOOTH))
def test_smooth_elementwise_gradients(name, shape, device, rng):
    fn, _, (low, high) = SMOOTH[name]
    x = leaf(rng.uniform(low, high, shape), device)
    method = getattr(x, name)()
    np.testing.assert_allclose(method.numpy(), fn(x).numpy(), rtol=0)
    check(fn, x)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(SMOOTH))
def test_smooth_elementwise_values_match_torch(name, shape, device, rng):
    torch = torch_or_skip()
    fn, reference, (low, high) = SMOOTH[name]
    x_np = rng.uniform(low, high, shape)
    expected = torch_fn(torch, reference)(torch.tensor(x_np)).numpy()
    np.testing.assert_allclose(fn(leaf(x_np, device)).numpy(), expected, rtol=1e-12)


def test_erfc_keeps_its_precision_where_erf_is_near_one(device):
    values = np.array([-6.0, -2.5, 2.0, 4.0, 6.0, 10.0, 26.0])
    got = gg.erfc(gg.as_tensor(values, device=device)).numpy()
    expected = np.array([math.erfc(v) for v in values])
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    assert got[-1] > 0  # 1 - erf(26) would be exactly 0


FLAT = {"floor": gg.floor, "ceil": gg.ceil, "round": gg.round, "trunc": gg.trunc, "sign": gg.sign}
# Halves (round: to even in both libraries), negatives, zero, integers.
FLAT_VALUES = np.array([-2.5, -1.5, -0.5, -0.2, 0.0, 0.5, 1.5, 2.5, 2.7, 3.0])


@pytest.mark.parametrize("name", list(FLAT))
def test_flat_ops_match_torch(name, device):
    torch = torch_or_skip()
    expected = getattr(torch, name)(torch.tensor(FLAT_VALUES)).numpy()
    np.testing.assert_array_equal(FLAT[name](leaf(FLAT_VALUES, device)).numpy(), expected)


@pytest.mark.parametrize("name", list(FLAT))
def test_flat_ops_have_zero_gradient(name, device):
    values = FLAT_VALUES
    x = leaf(values, device)
    out = FLAT[name](x)
    np.testing.assert_array_equal(
        out.numpy(), getattr(np, "rint" if name == "round" else name)(values)
    )
    np.testing.assert_array_equal(getattr(x, name)().numpy(), out.numpy())
    (g,) = gg.grad(out, x, gg.as_tensor(np.full(values.shape, np.inf), device=device))
    np.testing.assert_array_equal(g.numpy(), np.zeros_like(values))  # zero, even for inf


def test_round_to_decimals_like_numpy(device):
    values = np.array([1.2345, -2.5551, 0.125])
    got = gg.round(gg.as_tensor(values, device=device), decimals=2).numpy()
    np.testing.assert_array_equal(got, np.round(values, 2))


# --- cumprod ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "axis"), [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 1, 3), -1), ((3, 4), None)]
)
def test_cumprod_values_and_gradients(shape, axis, device, rng):
    x_np = rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)
    x = leaf(x_np, device)
    expected = np.cumprod(x_np, axis=axis)
    np.testing.assert_allclose(gg.cumprod(x, axis).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(x.cumprod(axis).numpy(), expected, rtol=1e-12)
    check(lambda x: gg.cumprod(x, axis), x)


CUMPROD_ZERO_ROWS = [
    [0.0, 2.0, 3.0, 0.5],  # a zero first
    [1.5, 0.0, 2.0, 3.0],  # one zero
    [1.5, 0.0, 2.0, 0.0, 3.0],  # two zeros
    [0.0, 0.0, 2.0, 1.0],  # two zeros in a row
    [2.0, 3.0, 0.5, 0.0],  # a zero last
]


@pytest.mark.parametrize("row", CUMPROD_ZERO_ROWS)
def test_cumprod_gradient_with_zeros_matches_torch(row, device, rng):
    torch = torch_or_skip()
    x_np = np.array([row, row[::-1]])
    x = leaf(x_np, device)
    g_np = rng.standard_normal(x_np.shape)
    gg.cumprod(x, 1).backward(gg.as_tensor(g_np, device=device))
    t = torch.tensor(x_np, requires_grad=True)
    torch.cumprod(t, 1).backward(torch.tensor(g_np))
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("row", CUMPROD_ZERO_ROWS)
def test_cumprod_gradients_with_zeros(row, device):
    x_np = np.array([row, row[::-1]])
    assert gg.gradcheck(lambda x: gg.cumprod(x, 1), (leaf(x_np, device),))
    if row.count(0.0) == 1:  # second derivatives are exact with up to one zero per slice
        assert gg.gradgradcheck(lambda x: gg.cumprod(x, 1), (leaf(x_np, device),))


# --- amax / amin ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["amax", "amin"])
def test_amax_amin_split_ties_evenly_like_torch(name, device):
    torch = torch_or_skip()
    values = np.array([[1.0, 3.0, 3.0, -1.0], [-1.0, -1.0, 2.0, -1.0]])
    x = leaf(values, device)
    out = getattr(gg, name)(x, axis=1)
    out.sum().backward()
    t = torch.tensor(values, requires_grad=True)
    getattr(torch, name)(t, dim=1).sum().backward()
    np.testing.assert_array_equal(out.numpy(), getattr(torch, name)(t, dim=1).detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    # gpugrad's max/min follow the same rule (PyTorch's max(dim=) would not split).
    np.testing.assert_array_equal(getattr(x, name)(axis=1).numpy(), out.numpy())


@pytest.mark.parametrize("axis", [None, 0, (0, 2)])
def test_amax_gradients(axis, device, rng):
    x = leaf(rng.standard_normal((3, 1, 4)), device)
    check(lambda x: gg.amax(x, axis, keepdims=True), x)
    check(lambda x: gg.amin(x, axis), x)


# --- var / std with PyTorch's arguments -------------------------------------------------------
VAR_KWARGS = [
    ({}, {"correction": 0}, 0),
    ({"correction": 1}, {"correction": 1}, 1),
    ({"correction": 2}, {"correction": 2}, 2),
    ({"unbiased": True}, {"unbiased": True}, 1),
    ({"unbiased": False}, {"unbiased": False}, 0),
    ({"ddof": 1}, {"correction": 1}, 1),
]


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize(("kwargs", "torch_kwargs", "ddof"), VAR_KWARGS)
def test_var_std_take_correction_and_unbiased(name, kwargs, torch_kwargs, ddof, device, rng):
    x_np = rng.standard_normal((4, 5))
    x = leaf(x_np, device)
    got = getattr(gg, name)(x, axis=1, **kwargs)
    expected = getattr(np, name)(x_np, axis=1, ddof=ddof)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(getattr(x, name)(1, **kwargs).numpy(), got.numpy(), rtol=0)
    check(lambda x: getattr(gg, name)(x, axis=1, **kwargs), x)


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize(("kwargs", "torch_kwargs", "ddof"), VAR_KWARGS)
def test_var_std_match_torch(name, kwargs, torch_kwargs, ddof, device, rng):
    torch = torch_or_skip()
    x_np = rng.standard_normal((4, 5))
    got = getattr(gg, name)(leaf(x_np, device), axis=1, **kwargs)
    expected = getattr(torch, name)(torch.tensor(x_np), dim=1, **torch_kwargs)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12)


# --- norms ------------------------------------------------------------------------------------
ORDS = [2, 1, math.inf, -math.inf, 0, 3, 0.5, -1.5]


NORM_CASES = [
    ((5,), None, False),
    ((3, 4), 1, False),
    ((3, 4), (0, 1), True),
    ((2, 1, 3), 0, False),
]


@pytest.mark.parametrize("ord", ORDS, ids=str)
@pytest.mark.parametrize(("shape", "axis", "keepdims"), NORM_CASES)
def test_vector_norm_gradients(ord, shape, axis, keepdims, device, rng):
    x_np = rng.uniform(0.3, 2.0, shape) * rng.choice([-1, 1], shape)
    check(lambda x: gg.linalg.vector_norm(x, ord, axis=axis, keepdims=keepdims), leaf(x_np, device))


@pytest.mark.parametrize("ord", ORDS, ids=str)
@pytest.mark.parametrize(("shape", "axis", "keepdims"), NORM_CASES)
def test_vector_norm_values_match_torch(ord, shape, axis, keepdims, device, rng):
    torch = torch_or_skip()
    x_np = rng.uniform(0.3, 2.0, shape) * rng.choice([-1, 1], shape)
    got = gg.linalg.vector_norm(leaf(x_np, device), ord, axis=axis, keepdims=keepdims)
    expected = torch.linalg.vector_norm(torch.tensor(x_np), ord, dim=axis, keepdim=keepdims)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize("ord", ORDS, ids=str)
def test_vector_norm_gradient_at_zeros_matches_torch(ord, device):
    """A zero vector and zero entries: PyTorch's subgradient choices (0 where undefined)."""
    torch = torch_or_skip()
    x_np = np.array([[0.0, 0.0, 0.0], [0.0, -2.0, 1.0], [3.0, -3.0, 1.0]])
    x = leaf(x_np, device)
    with np.errstate(divide="ignore"):  # |0|^p for p < 0 is inf, as in PyTorch
        gg.linalg.vector_norm(x, ord, axis=1).sum().backward()
    t = torch.tensor(x_np, requires_grad=True)
    torch.linalg.vector_norm(t, ord, dim=1).sum().backward()
    # PyTorch leaves no gradient at all for ord 0 (a count); gpugrad gives zeros.
    expected = np.zeros_like(x_np) if t.grad is None else t.grad.numpy()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_tensor_norm_takes_p_or_ord(device, rng):
    torch = torch_or_skip()
    x_np = rng.standard_normal((3, 4))
    x = leaf(x_np, device)
    t = torch.tensor(x_np)
    np.testing.assert_allclose(x.norm().numpy(), t.norm().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.norm(1, axis=0).numpy(), t.norm(1, dim=0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.norm(ord=3).numpy(), t.norm(p=3).numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.norm("fro").numpy(), t.norm("fro").numpy(), rtol=1e-12)
    assert gg.norm(x, 2, axis=1, keepdims=True).shape == (3, 1)


# --- isclose / allclose -----------------------------------------------------------------------
def test_isclose_allclose_match_torch(device):
    torch = torch_or_skip()
    a_np = np.array([1.0, 2.0, np.nan, np.inf, 1e-9])
    b_np = np.array([1.0 + 1e-6, 2.1, np.nan, np.inf, 0.0])
    a, b = gg.as_tensor(a_np, device=device), gg.as_tensor(b_np, device=device)
    ta, tb = torch.tensor(a_np), torch.tensor(b_np)
    for kwargs in ({}, {"equal_nan": True}, {"rtol": 0.1}, {"atol": 0.0, "rtol": 0.0}):
        got = gg.isclose(a, b, **kwargs)
        assert got.dtype == np.bool_ and not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), torch.isclose(ta, tb, **kwargs).numpy())
        np.testing.assert_array_equal(a.isclose(b, **kwargs).numpy(), got.numpy())
        assert gg.allclose(a, b, **kwargs) is torch.allclose(ta, tb, **kwargs)
    assert a[:2].allclose(a[:2]) is True
    assert gg.isclose(a, 1.0).numpy()[0]
