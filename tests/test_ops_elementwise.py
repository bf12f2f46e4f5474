"""Elementwise ops: arithmetic, unary math, clip, maximum/minimum, where, comparisons, casts.

Forward values are compared with NumPy; every differentiable op goes through `gg.gradcheck`
and `gg.gradgradcheck` in float64 on several shapes (broadcasting, size-1 axes, 0-d and
non-contiguous inputs), with inputs drawn away from kinks, ties and poles.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpugrad as gg

# --- helpers -------------------------------------------------------------------------------


def leaf(array, device, requires_grad=True):
    """A leaf tensor on `device` holding `array` (a non-contiguous view stays one on cpu)."""
    t = gg.as_tensor(array, device=device)
    return t.requires_grad_() if requires_grad else t


def check_grads(fn, *inputs, **tol):
    """First and second derivatives of fn against finite differences."""
    assert gg.gradcheck(fn, inputs, **tol)
    assert gg.gradgradcheck(fn, inputs, **tol)


def away_from_zero(rng, shape, low=0.3, high=2.0):
    """Values with |x| in [low, high] and random sign: no kink or pole at 0 nearby."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def distinct_pair(rng, sa, sb, gap=0.1):
    """Two arrays whose broadcast elements differ by at least `gap` everywhere (no ties)."""
    while True:
        a, b = rng.uniform(-2, 2, sa), rng.uniform(-2, 2, sb)
        if np.all(np.abs(np.subtract(a, b)) >= gap):
            return a, b


# A shape for each case of the rules: 0-d, 1-d, 2-d, size-1 axis, and a non-contiguous view.
UNARY_SHAPES = [(), (5,), (3, 4), (2, 1, 3), "noncontig"]


def unary_input(rng, shape, draw):
    if shape == "noncontig":
        return draw(rng, (4, 3)).T  # a transposed view: not C-contiguous
    return np.asarray(draw(rng, shape))


BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((2, 1, 4), (3, 1)),
    ((3, 4), (1,)),
    ((1,), (2, 3)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((4, 1), (1, 3)),
]

# --- tensor (op) tensor --------------------------------------------------------------------

BINARY = {
    "add": (lambda a, b: a + b, lambda rng, s: rng.standard_normal(s)),
    "sub": (lambda a, b: a - b, lambda rng, s: rng.standard_normal(s)),
    "mul": (lambda a, b: a * b, lambda rng, s: rng.standard_normal(s)),
    "div": (lambda a, b: a / b, lambda rng, s: away_from_zero(rng, s)),
    "pow": (lambda a, b: a**b, lambda rng, s: rng.uniform(0.5, 2.0, s)),
}


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_operator_forward_and_grads(name, shapes, device, rng):
    op, draw = BINARY[name]
    a_np, b_np = np.asarray(draw(rng, shapes[0])), np.asarray(draw(rng, shapes[1]))
    a, b = leaf(a_np, device), leaf(b_np, device)
    out = op(a, b)
    expected = op(a_np, b_np)
    assert out.shape == expected.shape
    assert out.device == a.device
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    check_grads(op, a, b)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_operator_on_noncontiguous_inputs(name, device, rng):
    op, draw = BINARY[name]
    a_np, b_np = draw(rng, (4, 3)).T, draw(rng, (4,))
    a = leaf(a_np, device)
    if device == "cpu":
        assert not a.data.flags.c_contiguous
    b = leaf(b_np, device)
    np.testing.assert_allclose(op(a, b).numpy(), op(a_np, b_np), rtol=1e-12)
    check_grads(op, a, b)


def test_binary_gradients_have_input_shapes_and_sum_over_broadcast_axes(device, rng):
    a_np, b_np = rng.standard_normal((2, 1, 4)), rng.standard_normal((3, 1))
    a, b = leaf(a_np, device), leaf(b_np, device)
    g = rng.standard_normal((2, 3, 4))
    (a * b).backward(gg.as_tensor(g, device=device))
    assert a.grad.shape == (2, 1, 4) and b.grad.shape == (3, 1)
    np.testing.assert_allclose(a.grad.numpy(), (g * b_np).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(b.grad.numpy(), (g * a_np).sum(axis=(0, 2))[:, None])


def test_pow_gradient_of_exponent_is_out_times_log_base(device, rng):
    a_np, b_np = rng.uniform(0.5, 2.0, (3,)), rng.uniform(-1.0, 1.0, (3,))
    a, b = leaf(a_np, device), leaf(b_np, device)
    (a**b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b_np * a_np ** (b_np - 1))
    np.testing.assert_allclose(b.grad.numpy(), a_np**b_np * np.log(a_np))


def test_mismatched_shapes_raise_shape_error_naming_them(device):
    a, b = gg.ones(3, 4, device=device), gg.ones(3, device=device)
    for op in (gg.add, gg.sub, gg.mul, gg.div, gg.pow, gg.maximum, gg.minimum):
        with pytest.raises(gg.ShapeError, match=r"\(3, 4\).*\(3,\)"):
            op(a, b)


# --- tensor (op) Python scalar -------------------------------------------------------------

# Each: the expression (for tensors and NumPy arrays alike) and how to draw its input.
SCALAR_EXPRS = {
    "x + 2": (lambda x: x + 2, lambda rng, s: rng.standard_normal(s)),
    "2.5 + x": (lambda x: 2.5 + x, lambda rng, s: rng.standard_normal(s)),
    "x - 1.5": (lambda x: x - 1.5, lambda rng, s: rng.standard_normal(s)),
    "2 - x": (lambda x: 2 - x, lambda rng, s: rng.standard_normal(s)),
    "x * 3": (lambda x: x * 3, lambda rng, s: rng.standard_normal(s)),
    "-0.5 * x": (lambda x: -0.5 * x, lambda rng, s: rng.standard_normal(s)),
    "x / 4": (lambda x: x / 4, lambda rng, s: rng.standard_normal(s)),
    "2 / x": (lambda x: 2 / x, away_from_zero),
    "2 ** x": (lambda x: 2**x, lambda rng, s: rng.standard_normal(s)),
    "0.5 ** x": (lambda x: 0.5**x, lambda rng, s: rng.standard_normal(s)),
    "x ** 2": (lambda x: x**2, lambda rng, s: rng.standard_normal(s)),
    "x ** 3": (lambda x: x**3, lambda rng, s: rng.standard_normal(s)),
    "x ** 0.5": (lambda x: x**0.5, lambda rng, s: rng.uniform(0.5, 2.0, s)),
    "x ** -1.5": (lambda x: x**-1.5, lambda rng, s: rng.uniform(0.5, 2.0, s)),
    "-x": (lambda x: -x, lambda rng, s: rng.standard_normal(s)),
}


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("expr", list(SCALAR_EXPRS))
def test_scalar_operand_forward_and_grads(expr, shape, device, rng):
    fn, draw = SCALAR_EXPRS[expr]
    x_np = unary_input(rng, shape, draw)
    x = leaf(x_np, device)
    out = fn(x)
    assert isinstance(out, gg.Tensor) and out.device == x.device
    np.testing.assert_allclose(out.numpy(), fn(x_np), rtol=1e-12)
    check_grads(fn, x)


@pytest.mark.parametrize("expr", list(SCALAR_EXPRS))
def test_scalar_operand_keeps_float32(expr, device, rng):
    fn, draw = SCALAR_EXPRS[expr]
    x_np = np.abs(draw(rng, (3,))).astype(np.float32) + 0.5
    out = fn(leaf(x_np, device))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), fn(x_np.astype(np.float64)), rtol=1e-5)


def test_scalar_op_gradient_values(device, rng):
    x_np = rng.uniform(0.5, 2.0, (4,))
    cases = [
        (lambda x: 2 - x, lambda x: -np.ones_like(x)),
        (lambda x: 2 / x, lambda x: -2 / x**2),
        (lambda x: 2**x, lambda x: 2**x * np.log(2)),
        (lambda x: x**2, lambda x: 2 * x),
        (lambda x: x**0.5, lambda x: 0.5 / np.sqrt(x)),
        (lambda x: x / 4, lambda x: np.full_like(x, 0.25)),
    ]
    for fn, derivative in cases:
        x = leaf(x_np, device)
        fn(x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), derivative(x_np), rtol=1e-12)


def test_pow_zero_has_zero_gradient_even_at_zero(device):
    x = leaf(np.array([0.0, -1.5, 2.0]), device)
    out = x**0
    np.testing.assert_array_equal(out.numpy(), [1.0, 1.0, 1.0])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])
    (g,) = gg.grad((x**0).sum(), x, create_graph=True)
    np.testing.assert_array_equal(g.numpy(), [0.0, 0.0, 0.0])


def test_x_pow_y_with_y_a_tensor_that_needs_no_grad(device, rng):
    x_np, y_np = rng.uniform(0.5, 2.0, (2, 3)), rng.uniform(-2, 2, (3,))
    x, y = leaf(x_np, device), leaf(y_np, device, requires_grad=False)
    np.testing.assert_allclose((x**y).numpy(), x_np**y_np)
    check_grads(lambda x: x**y, x)
    # and the other way round: the exponent alone needs a gradient
    y.requires_grad_()
    check_grads(lambda y: leaf(x_np, device, requires_grad=False) ** y, y)


# --- NumPy scalars, arrays and lists as the other operand ----------------------------------

NUMPY_SCALAR_EXPRS = {
    "x + f32": lambda x: x + np.float32(2.0),
    "f64 * x": lambda x: np.float64(3.0) * x,
    "f64 - x": lambda x: np.float64(1.5) - x,
    "x / i64": lambda x: x / np.int64(4),
    "f64 / x": lambda x: np.float64(2.0) / x,
    "x ** f64": lambda x: x ** np.float64(2.0),
    "f64 ** x": lambda x: np.float64(2.0) ** x,
}


@pytest.mark.parametrize("expr", list(NUMPY_SCALAR_EXPRS))
def test_numpy_scalar_operand(expr, device, rng):
    fn = NUMPY_SCALAR_EXPRS[expr]
    x_np = rng.uniform(0.5, 2.0, (2, 3))
    x = leaf(x_np, device)
    out = fn(x)
    assert isinstance(out, gg.Tensor) and out.device == x.device
    np.testing.assert_allclose(out.numpy(), fn(x_np), rtol=1e-12)
    check_grads(fn, x)
    # A NumPy scalar is a constant like a Python one: float32 stays float32.
    assert fn(leaf(x_np.astype(np.float32), device)).dtype == np.float32


LIST_EXPRS = {
    "x + list": lambda x, c: x + c,
    "list + x": lambda x, c: c + x,
    "list - x": lambda x, c: c - x,
    "x * list": lambda x, c: x * c,
    "list / x": lambda x, c: c / x,
    "x ** list": lambda x, c: x**c,
    "maximum": lambda x, c: gg.maximum(x, c) if isinstance(x, gg.Tensor) else np.maximum(x, c),
}


@pytest.mark.parametrize("expr", list(LIST_EXPRS))
def test_list_operand_is_refused_with_a_pointer_to_gg_tensor(expr, device, rng):
    """One rule for every op, PyTorch's: a Python list is not a tensor argument."""
    fn = LIST_EXPRS[expr]
    x = leaf(rng.uniform(0.5, 2.0, (2, 3)), device)
    with pytest.raises(gg.DTypeError, match=r"list.*gg\.tensor\(\.\.\.\)"):
        fn(x, [0.25, 1.5, 3.0])


ARRAY_EXPRS = {
    "x + arr": lambda x, c: x + c,
    "arr + x": lambda x, c: c + x,
    "arr - x": lambda x, c: c - x,
    "arr * x": lambda x, c: c * x,
    "x / arr": lambda x, c: x / c,
    "arr / x": lambda x, c: c / x,
    "arr ** x": lambda x, c: c**x,
    "x ** arr": lambda x, c: x**c,
}


@pytest.mark.parametrize("expr", list(ARRAY_EXPRS))
def test_numpy_array_operand(expr, device, rng):
    """On cpu a NumPy array is a constant operand; next to a cuda tensor it is host data,
    which is never moved silently: a DeviceError says so."""
    fn = ARRAY_EXPRS[expr]
    x_np, c = rng.uniform(0.5, 2.0, (2, 3)), rng.uniform(0.5, 2.0, (3,))
    x = leaf(x_np, device)
    if x.device.type == "cuda":
        with pytest.raises(gg.DeviceError, match="cuda"):
            fn(x, c)
        return
    out = fn(x, c)
    assert isinstance(out, gg.Tensor) and out.shape == (2, 3)
    np.testing.assert_allclose(out.numpy(), fn(x_np, c), rtol=1e-12)
    check_grads(lambda x: fn(x, c), x)


def test_numpy_array_operand_dtype_follows_numpy_promotion(rng):
    x32 = gg.ones(2, 3, device="cpu")
    assert (x32 + np.ones(3, dtype=np.float32)).dtype == np.float32
    assert (x32 * np.ones(3, dtype=np.float64)).dtype == np.float64
    assert (x32 * gg.tensor([1.0, 2.0, 3.0])).dtype == np.float32  # Python floats: float32


@pytest.mark.gpu
def test_gpu_array_next_to_cpu_tensor_raises_device_error():
    gpu_array = gg.ones(3, device="cuda").data
    with pytest.raises(gg.DeviceError, match="cpu"):
        gg.ones(3, device="cpu") + gpu_array


@pytest.mark.gpu
def test_tensors_on_different_devices_raise_device_error():
    a, b = gg.ones(3, device="cpu"), gg.ones(3, device="cuda")
    for op in (gg.add, gg.mul, gg.maximum, gg.eq):
        with pytest.raises(gg.DeviceError, match=r"cpu.*cuda"):
            op(a, b)


# --- gg functions and methods match the operators ------------------------------------------


def test_functions_and_methods_match_operators(device, rng):
    a_np, b_np = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(0.5, 2.0, (4,))
    a, b = leaf(a_np, device), leaf(b_np, device)
    pairs = [
        (gg.add(a, b), a_np + b_np),
        (gg.sub(a, b), a_np - b_np),
        (gg.mul(a, b), a_np * b_np),
        (gg.div(a, b), a_np / b_np),
        (gg.pow(a, b), a_np**b_np),
        (gg.neg(a), -a_np),
        (gg.maximum(a, b), np.maximum(a_np, b_np)),
        (gg.minimum(a, b), np.minimum(a_np, b_np)),
        (gg.add(2.0, a), 2.0 + a_np),
        (gg.sub(2.0, a), 2.0 - a_np),
        (gg.div(2.0, a), 2.0 / a_np),
        (gg.pow(2.0, a), 2.0**a_np),
        (a.add(b), a_np + b_np),
        (a.sub(b), a_np - b_np),
        (a.mul(b), a_np * b_np),
        (a.div(b), a_np / b_np),
        (a.pow(b), a_np**b_np),
        (a.neg(), -a_np),
        (a.maximum(b), np.maximum(a_np, b_np)),
        (a.minimum(b), np.minimum(a_np, b_np)),
        (abs(a - 1), np.abs(a_np - 1)),
    ]
    for got, expected in pairs:
        assert got.device == a.device
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


# --- unary math ----------------------------------------------------------------------------


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _normal(rng, s):
    return rng.standard_normal(s)


def _positive(rng, s):
    return rng.uniform(0.3, 3.0, s)


UNARY = {
    "exp": (np.exp, _normal),
    "log": (np.log, _positive),
    "log1p": (np.log1p, lambda rng, s: rng.uniform(-0.7, 3.0, s)),
    "expm1": (np.expm1, _normal),
    "sqrt": (np.sqrt, _positive),
    "abs": (np.abs, away_from_zero),
    "sin": (np.sin, lambda rng, s: rng.uniform(-4, 4, s)),
    "cos": (np.cos, lambda rng, s: rng.uniform(-4, 4, s)),
    "tanh": (np.tanh, lambda rng, s: rng.uniform(-3, 3, s)),
    "sigmoid": (_sigmoid, lambda rng, s: rng.uniform(-6, 6, s)),
    "relu": (lambda x: np.maximum(x, 0), away_from_zero),
}


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_forward_and_grads(name, shape, device, rng):
    ref, draw = UNARY[name]
    x_np = unary_input(rng, shape, draw)
    x = leaf(x_np, device)
    fn = getattr(gg, name)
    out = fn(x)
    assert out.shape == x_np.shape and out.dtype == np.float64 and out.device == x.device
    np.testing.assert_allclose(out.numpy(), ref(x_np), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(getattr(x, name)().numpy(), out.numpy())  # method form
    check_grads(fn, x)


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_keeps_float32(name, device, rng):
    ref, draw = UNARY[name]
    x_np = np.asarray(draw(rng, (3, 4)), dtype=np.float32)
    out = getattr(gg, name)(leaf(x_np, device))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref(x_np.astype(np.float64)), rtol=2e-6, atol=1e-7)


UNARY_DERIVATIVES = {
    "exp": np.exp,
    "log": lambda x: 1 / x,
    "log1p": lambda x: 1 / (1 + x),
    "expm1": np.exp,
    "sqrt": lambda x: 0.5 / np.sqrt(x),
    "abs": np.sign,
    "sin": np.cos,
    "cos": lambda x: -np.sin(x),
    "tanh": lambda x: 1 - np.tanh(x) ** 2,
    "sigmoid": lambda x: _sigmoid(x) * (1 - _sigmoid(x)),
    "relu": lambda x: (x > 0).astype(x.dtype),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_gradient_matches_the_derivative(name, device, rng):
    _, draw = UNARY[name]
    x_np = np.asarray(draw(rng, (7,)))
    x = leaf(x_np, device)
    g = rng.standard_normal(7)
    getattr(gg, name)(x).backward(gg.as_tensor(g, device=device))
    np.testing.assert_allclose(x.grad.numpy(), g * UNARY_DERIVATIVES[name](x_np), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_saturates_without_overflow(dtype, device):
    x = leaf(np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype=dtype), device)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        out = x.sigmoid()
        out.backward(gg.ones_like(out))
    values = out.numpy()
    assert values[0] == 0.0 and values[-1] == 1.0 and values[2] == 0.5
    assert out.dtype == np.dtype(dtype)
    grad = x.grad.numpy()
    assert np.all(np.isfinite(grad))
    assert grad[0] == 0.0 and grad[-1] == 0.0 and grad[2] == 0.25


def test_relu_and_abs_gradient_at_zero_is_zero(device):
    x = leaf(np.array([-1.0, 0.0, 2.0]), device)
    (x.relu() + x.abs()).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, 0.0, 2.0])


# --- clip / clamp --------------------------------------------------------------------------

CLIP_BOUNDS = [(-0.5, None), (None, 0.5), (-0.5, 0.5)]


def clip_input(rng, shape):
    """Values at least 0.1 away from the bounds ±0.5."""
    x = np.asarray(rng.uniform(-2, 2, shape))
    return np.where(np.abs(np.abs(x) - 0.5) < 0.1, 0.0, x)


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("bounds", CLIP_BOUNDS, ids=str)
def test_clip_forward_and_grads(bounds, shape, device, rng):
    low, high = bounds
    x_np = clip_input(rng, (4, 3)).T if shape == "noncontig" else clip_input(rng, shape)
    x = leaf(x_np, device)
    out = gg.clip(x, low, high)
    np.testing.assert_array_equal(out.numpy(), np.clip(x_np, low, high))
    np.testing.assert_array_equal(x.clamp(min=low, max=high).numpy(), out.numpy())
    np.testing.assert_array_equal(x.clip(low, high).numpy(), out.numpy())
    out.sum().backward()
    inside = (x_np >= (-np.inf if low is None else low)) & (
        x_np <= (np.inf if high is None else high)
    )
    np.testing.assert_array_equal(x.grad.numpy(), inside.astype(np.float64))
    check_grads(lambda x: gg.clamp(x, min=low, max=high), x)


def test_clip_keeps_float32_and_needs_a_bound(device):
    x = gg.tensor([-1.0, 0.25, 1.0], device=device)
    assert x.clip(min=0.0).dtype == np.float32
    assert x.clamp(max=0.5).dtype == np.float32
    with pytest.raises(ValueError, match="min"):
        x.clip()


# --- maximum / minimum ---------------------------------------------------------------------

EXTREMA = {"maximum": np.maximum, "minimum": np.minimum}


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("name", list(EXTREMA))
def test_extremum_tensor_tensor(name, shapes, device, rng):
    a_np, b_np = distinct_pair(rng, *shapes)
    a, b = leaf(a_np, device), leaf(b_np, device)
    fn = getattr(gg, name)
    np.testing.assert_array_equal(fn(a, b).numpy(), EXTREMA[name](a_np, b_np))
    check_grads(fn, a, b)


@pytest.mark.parametrize("name", list(EXTREMA))
def test_extremum_tensor_scalar_either_side(name, device, rng):
    x_np = clip_input(rng, (3, 4))  # 0.1 away from ±0.5
    x = leaf(x_np, device)
    fn, ref = getattr(gg, name), EXTREMA[name]
    for scalar in (0.5, -0.5, np.float64(0.5)):
        np.testing.assert_array_equal(fn(x, scalar).numpy(), ref(x_np, scalar))
        np.testing.assert_array_equal(fn(scalar, x).numpy(), ref(scalar, x_np))
        check_grads(lambda x, s=scalar: fn(x, s), x)
        check_grads(lambda x, s=scalar: fn(s, x), x)
    assert fn(gg.ones(2, device=device), 0.5).dtype == np.float32


@pytest.mark.parametrize("name", list(EXTREMA))
def test_extremum_ties_split_the_gradient_equally(name, device, rng):
    # a and b tie exactly in some elements (with broadcasting), and differ elsewhere.
    a_np = np.array([[1.0, 2.0, 3.0], [2.0, 0.0, 3.0]])
    b_np = np.array([2.0, 2.0, 3.0])
    a, b = leaf(a_np, device), leaf(b_np, device)
    g = rng.standard_normal((2, 3))
    getattr(gg, name)(a, b).backward(gg.as_tensor(g, device=device))
    a_wins = a_np > b_np if name == "maximum" else a_np < b_np
    share = np.where(a_np == b_np, 0.5, np.where(a_wins, 1.0, 0.0))
    np.testing.assert_allclose(a.grad.numpy(), g * share)
    np.testing.assert_allclose(b.grad.numpy(), (g * (1 - share)).sum(axis=0))
    # a tie with a scalar: half the gradient
    x = leaf(np.array([1.0, 2.0, 3.0]), device)
    getattr(x, name)(2.0).sum().backward()
    expected = [0.0, 0.5, 1.0] if name == "maximum" else [1.0, 0.5, 0.0]
    np.testing.assert_array_equal(x.grad.numpy(), expected)


# --- where ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cond_shape", "sa", "sb"),
    [
        ((3, 4), (3, 4), (3, 4)),
        ((3, 4), (4,), (3, 1)),
        ((4,), (3, 4), ()),
        ((2, 1, 4), (3, 1), (4,)),
    ],
    ids=str,
)
def test_where_tensors_with_broadcasting(cond_shape, sa, sb, device, rng):
    cond_np = rng.random(cond_shape) < 0.5
    a_np, b_np = rng.standard_normal(sa), rng.standard_normal(sb)
    a, b = leaf(a_np, device), leaf(b_np, device)
    cond = gg.as_tensor(cond_np, device=device)
    out = gg.where(cond, a, b)
    expected = np.where(cond_np, a_np, b_np)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)
    check_grads(lambda a, b: gg.where(cond, a, b), a, b)


def test_where_gradient_goes_to_a_where_cond_and_to_b_elsewhere(device, rng):
    cond_np = np.array([[True, False, True], [False, False, True]])
    a, b = leaf(rng.standard_normal((2, 3)), device), leaf(rng.standard_normal((3,)), device)
    g = rng.standard_normal((2, 3))
    gg.where(gg.as_tensor(cond_np, device=device), a, b).backward(gg.as_tensor(g, device=device))
    np.testing.assert_array_equal(a.grad.numpy(), np.where(cond_np, g, 0.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.where(cond_np, 0.0, g).sum(axis=0))


def test_where_with_scalars_and_host_conditions(device, rng):
    x_np = rng.standard_normal((2, 3))
    x = leaf(x_np, device)
    cond_np = x_np > 0
    conds = [x > 0] + ([cond_np] if device == "cpu" else [])
    with pytest.raises(gg.DTypeError, match="list"):
        gg.where(cond_np.tolist(), x, 0.0)
    for cond in conds:
        np.testing.assert_array_equal(gg.where(cond, x, 0.0).numpy(), np.where(cond_np, x_np, 0))
        np.testing.assert_array_equal(gg.where(cond, 1.0, x).numpy(), np.where(cond_np, 1, x_np))
        check_grads(lambda x, c=cond: gg.where(c, x, -1.0), x)
        check_grads(lambda x, c=cond: gg.where(c, 2.0, x), x)
    x32 = gg.ones(3, device=device)
    assert gg.where(x32 > 0, x32, 0.0).dtype == np.float32
    assert gg.where(x32 > 0, 0.0, x32).dtype == np.float32
    # two Python scalars: the dtypes gg.tensor gives them, on the condition's device
    both = gg.where(x > 0, 1.0, -1.0)
    assert both.dtype == np.float32 and both.device == x.device and not both.requires_grad
    np.testing.assert_array_equal(both.numpy(), np.where(cond_np, 1.0, -1.0))
    assert gg.where(x > 0, 1, 0).dtype == np.int64


@pytest.mark.gpu
def test_where_with_a_host_condition_next_to_cuda_tensors_raises_device_error():
    x = gg.ones(3, device="cuda")
    with pytest.raises(gg.DeviceError, match="cuda"):
        gg.where(np.array([True, False, True]), x, 0.0)


def test_where_with_a_numeric_condition_treats_nonzero_as_true(device, rng):
    a, b = leaf(rng.standard_normal(4), device), leaf(rng.standard_normal(4), device)
    cond = gg.tensor([0.0, 2.0, -1.0, 0.0], device=device)
    expected = np.where([False, True, True, False], a.numpy(), b.numpy())
    np.testing.assert_array_equal(gg.where(cond, a, b).numpy(), expected)


# --- comparisons and logic: bool tensors without grad ---------------------------------------

COMPARISONS = {
    "==": (lambda a, b: a == b, gg.eq),
    "!=": (lambda a, b: a != b, gg.ne),
    "<": (lambda a, b: a < b, gg.lt),
    "<=": (lambda a, b: a <= b, gg.le),
    ">": (lambda a, b: a > b, gg.gt),
    ">=": (lambda a, b: a >= b, gg.ge),
}


@pytest.mark.parametrize("op", list(COMPARISONS))
def test_comparisons_return_bool_tensors_without_grad(op, device, rng):
    fn, named = COMPARISONS[op]
    # small integers as floats, so that == and <= have ties to find
    a_np = rng.integers(-2, 3, (3, 4)).astype(np.float64)
    b_np = rng.integers(-2, 3, (4,)).astype(np.float64)
    a, b = leaf(a_np, device), leaf(b_np, device)
    for got, expected in [
        (fn(a, b), fn(a_np, b_np)),
        (named(a, b), fn(a_np, b_np)),
        (fn(a, 1.0), fn(a_np, 1.0)),
        (fn(1.0, a), fn(1.0, a_np)),
        (fn(a, np.float64(0.0)), fn(a_np, 0.0)),
        (fn(np.float64(0.0), a), fn(0.0, a_np)),
    ]:
        assert isinstance(got, gg.Tensor) and got.dtype == np.bool_
        assert not got.requires_grad and got.grad_fn is None
        assert got.device == a.device
        np.testing.assert_array_equal(got.numpy(), expected)


def test_logical_operators(device, rng):
    p_np, q_np = rng.random((3, 4)) < 0.5, rng.random((4,)) < 0.5
    p, q = gg.as_tensor(p_np, device=device), gg.as_tensor(q_np, device=device)
    for got, expected in [
        (p & q, p_np & q_np),
        (p | q, p_np | q_np),
        (p ^ q, p_np ^ q_np),
        (~p, ~p_np),
        (gg.logical_and(p, q), p_np & q_np),
        (gg.logical_or(p, q), p_np | q_np),
        (gg.logical_xor(p, q), p_np ^ q_np),
        (gg.logical_not(p), ~p_np),
    ]:
        assert got.dtype == np.bool_ and not got.requires_grad and got.shape == expected.shape
        np.testing.assert_array_equal(got.numpy(), expected)
    x = leaf(rng.standard_normal((3, 4)), device)
    both = (x > -0.5) & (x < 0.5)
    assert not both.requires_grad
    np.testing.assert_array_equal(both.numpy(), np.abs(x.numpy()) < 0.5)


def test_sign_isfinite_isnan(device):
    values = np.array([-2.5, -0.0, 0.0, 3.0, np.inf, -np.inf, np.nan])
    x = leaf(values, device)
    finite = leaf(values[:4], device)
    for got, expected in [
        (gg.isfinite(x), np.isfinite(values)),
        (x.isfinite(), np.isfinite(values)),
        (gg.isnan(x), np.isnan(values)),
        (x.isnan(), np.isnan(values)),
    ]:
        assert not got.requires_grad and got.grad_fn is None
        np.testing.assert_array_equal(got.numpy(), expected)
    # sign is flat: like PyTorch's, its gradient is zero rather than missing.
    for got in (gg.sign(finite), finite.sign()):
        np.testing.assert_array_equal(got.numpy(), np.sign(values[:4]))
        (g,) = gg.grad(got.sum(), finite)
        np.testing.assert_array_equal(g.numpy(), np.zeros(4))
    assert gg.isnan(x).dtype == np.bool_ and gg.isfinite(x).dtype == np.bool_


# --- dtypes --------------------------------------------------------------------------------


def test_float32_and_float64_tensors_promote_to_float64(device, rng):
    a = leaf(rng.standard_normal((2, 3)).astype(np.float32), device)
    b = leaf(rng.standard_normal((3,)), device)
    for out in (a + b, a - b, a * b, b / (a.abs() + 1), gg.maximum(a, b), gg.where(a > 0, a, b)):
        assert out.dtype == np.float64
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(b.numpy(), (2, 3)), rtol=1e-6)


def test_python_scalars_do_not_promote(device):
    for dtype in ("float16", "float32"):
        x = gg.ones(3, dtype=dtype, device=device)
        for out in (x * 2.0, 2.0 * x, x + 1, 1 - x, x / 3.0, 3.0 / x, x**2, 2.0**x, -x):
            assert out.dtype == np.dtype(dtype)


# --- astype, clone, to ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cast", "dtype"),
    [
        (lambda x: x.float(), "float32"),
        (lambda x: x.half(), "float16"),
        (lambda x: x.astype("float32"), "float32"),
        (lambda x: gg.astype(x, gg.float16), "float16"),
    ],
)
def test_cast_from_float64_and_gradient_cast_back(cast, dtype, device):
    x_np = np.array([[0.5, -1.25], [2.0, 3.0]])  # exactly representable in float16
    x = leaf(x_np, device)
    y = cast(x)
    assert y.dtype == np.dtype(dtype) and y.device == x.device
    np.testing.assert_array_equal(y.numpy(), x_np.astype(dtype))
    g = np.array([[1.0, 2.0], [-0.5, 4.0]], dtype=dtype)
    y.backward(gg.as_tensor(g, device=device))
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), g.astype(np.float64))
    # gg.grad hands back the engine's gradient as is: the cast back must happen in the op
    (gx,) = gg.grad(cast(x), x, gg.as_tensor(g, device=device))
    assert gx.dtype == np.float64
    (gx,) = gg.grad(cast(x), x, gg.as_tensor(g, device=device), create_graph=True)
    assert gx.dtype == np.float64


def test_cast_up_and_gradient_cast_back(device, rng):
    x = leaf(rng.standard_normal((3,)).astype(np.float32), device)
    y = x.double()
    assert y.dtype == np.float64
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 3.0, np.float32))
    assert x.float() is x  # already float32: nothing to do


def test_cast_through_float32_grads(device, rng):
    x = leaf(rng.uniform(0.5, 2.0, (2, 3)), device)

    def fn(x):
        return (x.float() ** 2).double()

    # float32 in the middle: finite differences need a larger step and looser tolerance
    check_grads(fn, x, eps=1e-3, atol=1e-4, rtol=1e-3)
    with pytest.raises(gg.GradcheckError):  # and the check can fail: a wrong derivative
        gg.gradcheck(lambda x: (x.float() ** 2).double().detach() * x, (x,), eps=1e-3, atol=1e-4)


def test_cast_to_integer_is_not_differentiable(device):
    x = leaf(np.array([1.7, -2.2]), device)
    y = x.astype("int64")
    assert y.dtype == np.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), [1, -2])


def test_clone_has_its_own_memory_and_passes_gradient(device, rng):
    x_np = rng.standard_normal((3, 4))
    before = x_np.copy()
    x = leaf(x_np, device)  # shares x_np's memory on cpu
    y = x.clone()
    assert y.requires_grad and y.dtype == x.dtype and y.device == x.device
    np.testing.assert_array_equal(y.numpy(), x_np)
    y.data[0, 0] = 100.0  # writing the clone's memory leaves x alone
    np.testing.assert_array_equal(x.numpy(), before)
    g = rng.standard_normal((3, 4))
    gg.clone(x).backward(gg.as_tensor(g, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), g)
    check_grads(lambda x: gg.clone(x) * x, x)
    nc = leaf(rng.standard_normal((4, 3)).T, device)
    check_grads(lambda t: t.clone().sin(), nc)


def test_to_cpu(device, rng):
    x_np = rng.standard_normal((2, 3))
    x = leaf(x_np, device)
    y = x.to("cpu")
    assert y.device.type == "cpu"
    np.testing.assert_array_equal(y.numpy(), x_np)
    if x.device.type == "cpu":
        assert y is x and x.cpu() is x
    else:
        assert y.requires_grad
    g = rng.standard_normal((2, 3))
    y.backward(gg.as_tensor(g, device="cpu"))
    assert x.grad.device == x.device
    np.testing.assert_array_equal(x.grad.numpy(), g)
    check_grads(lambda x: x.to("cpu") * x.to("cpu"), x)
