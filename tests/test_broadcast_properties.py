"""Property tests: broadcasting binary ops against NumPy, forward and backward.

For random pairs of broadcast-compatible shapes, each op's output equals NumPy's, and the
gradient of each input has exactly that input's shape and equals a reference computed here
with NumPy alone: the output gradient times the local derivative (on the broadcast shape),
summed over the axes along which the input was broadcast.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import gpugrad as gg

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    # `device` is a plain string per parametrization: sharing it between examples is fine.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


# --- shapes --------------------------------------------------------------------------------


@st.composite
def derived_shape(draw, base):
    """A shape that broadcasts to `base`: some leading axes dropped, some sizes made 1."""
    dropped = draw(st.integers(0, len(base)))
    return tuple(1 if draw(st.booleans()) else n for n in base[dropped:])


@st.composite
def broadcast_shapes(draw, count=2):
    """`count` shapes that broadcast together, each derived from one drawn base shape.

    The first is sometimes the base itself, so pairs like (3, 4) & (4,) and (2, 1, 4) & (3, 1)
    are both drawn, as well as size-1 and 0-d shapes.
    """
    base = draw(st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple))
    first = draw(st.one_of(st.just(base), derived_shape(base)))
    return (first, *(draw(derived_shape(base)) for _ in range(count - 1)))


def reduce_to(g, shape):
    """Sum a gradient of the broadcast shape down to `shape` (the NumPy reference)."""
    g = np.asarray(g)
    while g.ndim > len(shape):  # axes that broadcasting added in front
        g = g.sum(axis=0)
    for axis, n in enumerate(shape):  # size-1 axes that broadcasting stretched
        if n == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    assert g.shape == shape
    return g


# --- values --------------------------------------------------------------------------------

FINITE = st.floats(-3, 3, allow_nan=False, allow_subnormal=False, width=64)
NONZERO = st.one_of(st.floats(0.5, 3, width=64), st.floats(-3, -0.5, width=64))
# Few distinct values, so that maximum meets exact ties often.
SMALL_INTS = st.integers(-2, 2).map(float)


@st.composite
def operands(draw, a_elements=FINITE, b_elements=FINITE):
    """Two broadcast-compatible float64 arrays and an output gradient of their broadcast shape."""
    sa, sb = draw(broadcast_shapes())
    a = draw(arrays(np.float64, sa, elements=a_elements))
    b = draw(arrays(np.float64, sb, elements=b_elements))
    g = draw(arrays(np.float64, np.broadcast_shapes(sa, sb), elements=FINITE))
    return a, b, g


def run(fn, a, b, g, device):
    """fn on leaf tensors made from a and b, backward with g; returns (out, a.grad, b.grad)."""
    ta = gg.as_tensor(a, device=device).requires_grad_()
    tb = gg.as_tensor(b, device=device).requires_grad_()
    out = fn(ta, tb)
    assert out.shape == g.shape and out.dtype == np.float64 and out.device == ta.device
    out.backward(gg.as_tensor(g, device=device))
    assert ta.grad.shape == a.shape, f"grad of a: {ta.grad.shape} for input {a.shape}"
    assert tb.grad.shape == b.shape, f"grad of b: {tb.grad.shape} for input {b.shape}"
    return out.numpy(), ta.grad.numpy(), tb.grad.numpy()


def full(x, shape):
    """x broadcast to `shape` (NumPy), so local derivatives can be written elementwise."""
    return np.broadcast_to(x, shape)


# --- the properties ------------------------------------------------------------------------


@SETTINGS
@given(ops=operands())
def test_add(ops, device):
    a, b, g = ops
    out, ga, gb = run(gg.add, a, b, g, device)
    np.testing.assert_array_equal(out, a + b)
    np.testing.assert_allclose(ga, reduce_to(g, a.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, reduce_to(g, b.shape), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(ops=operands())
def test_sub(ops, device):
    a, b, g = ops
    out, ga, gb = run(lambda x, y: x - y, a, b, g, device)
    np.testing.assert_array_equal(out, a - b)
    np.testing.assert_allclose(ga, reduce_to(g, a.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, reduce_to(-g, b.shape), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(ops=operands())
def test_mul(ops, device):
    a, b, g = ops
    out, ga, gb = run(gg.mul, a, b, g, device)
    np.testing.assert_array_equal(out, a * b)
    np.testing.assert_allclose(ga, reduce_to(g * full(b, g.shape), a.shape), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gb, reduce_to(g * full(a, g.shape), b.shape), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(ops=operands(b_elements=NONZERO))
def test_div(ops, device):
    a, b, g = ops
    out, ga, gb = run(lambda x, y: x / y, a, b, g, device)
    np.testing.assert_allclose(out, a / b, rtol=1e-14)
    fa, fb = full(a, g.shape), full(b, g.shape)
    np.testing.assert_allclose(ga, reduce_to(g / fb, a.shape), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gb, reduce_to(-g * fa / fb**2, b.shape), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(ops=operands(a_elements=SMALL_INTS, b_elements=SMALL_INTS))
def test_maximum_with_ties_split_equally(ops, device):
    a, b, g = ops
    out, ga, gb = run(gg.maximum, a, b, g, device)
    np.testing.assert_array_equal(out, np.maximum(a, b))
    fa, fb = full(a, g.shape), full(b, g.shape)
    share_a = np.where(fa > fb, 1.0, 0.0) + np.where(fa == fb, 0.5, 0.0)
    share_b = np.where(fb > fa, 1.0, 0.0) + np.where(fa == fb, 0.5, 0.0)
    np.testing.assert_allclose(ga, reduce_to(g * share_a, a.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, reduce_to(g * share_b, b.shape), rtol=1e-12, atol=1e-12)


@st.composite
def where_operands(draw):
    """A condition, a and b (three broadcast-compatible shapes) and the output gradient."""
    sc, sa, sb = draw(broadcast_shapes(count=3).flatmap(st.permutations))
    cond = draw(arrays(np.bool_, sc))
    a = draw(arrays(np.float64, sa, elements=FINITE))
    b = draw(arrays(np.float64, sb, elements=FINITE))
    g = draw(arrays(np.float64, np.broadcast_shapes(sc, sa, sb), elements=FINITE))
    return cond, a, b, g


@SETTINGS
@given(ops=where_operands())
def test_where(ops, device):
    cond, a, b, g = ops
    c = gg.as_tensor(cond, device=device)
    out, ga, gb = run(lambda x, y: gg.where(c, x, y), a, b, g, device)
    np.testing.assert_array_equal(out, np.where(cond, a, b))
    fc = full(cond, g.shape)
    np.testing.assert_allclose(ga, reduce_to(np.where(fc, g, 0.0), a.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, reduce_to(np.where(fc, 0.0, g), b.shape), rtol=1e-12, atol=1e-12)


# --- the strategy itself -------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(shapes=broadcast_shapes(count=3))
def test_drawn_shapes_broadcast_together(shapes):
    out = np.broadcast_shapes(*shapes)
    for shape in shapes:
        assert len(shape) <= len(out)


def test_reduce_to_sums_exactly_the_broadcast_axes():
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(reduce_to(g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(reduce_to(g, (1, 1, 4)), g.sum(axis=(0, 1)).reshape(1, 1, 4))
    np.testing.assert_array_equal(reduce_to(g, ()), g.sum())
    np.testing.assert_array_equal(reduce_to(g, (2, 3, 4)), g)


def _stretched(shape, out):
    """Whether broadcasting to `out` stretches one of `shape`'s size-1 axes."""
    return any(n == 1 < m for n, m in zip(shape[::-1], out[::-1]))


CLASSIC_PAIRS = {
    # (3, 4) & (4,): leading axes dropped
    "fewer axes": lambda sa, sb: 0 < len(sb) < len(sa),
    # (2, 1, 4) & (3, 1): fewer axes, and each operand stretched along some axis
    "both stretched, fewer axes": lambda sa, sb: (
        len(sb) < len(sa)
        and _stretched(sa, np.broadcast_shapes(sa, sb))
        and _stretched(sb, np.broadcast_shapes(sa, sb))
    ),
    # (4, 1) & (1, 3)
    "both stretched, same axes": lambda sa, sb: (
        len(sa) == len(sb)
        and _stretched(sa, np.broadcast_shapes(sa, sb))
        and _stretched(sb, np.broadcast_shapes(sa, sb))
    ),
    # (3, 4) & ()
    "0-d operand": lambda sa, sb: sb == () and sa != (),
}


@pytest.mark.parametrize("kind", list(CLASSIC_PAIRS))
def test_strategy_reaches_the_classic_pairs(kind):
    """The strategy is not too narrow: it draws each kind of pair the ops must handle."""
    wanted = CLASSIC_PAIRS[kind]
    search = settings(max_examples=2000, database=None, derandomize=True)
    sa, sb = find(broadcast_shapes(), lambda shapes: wanted(*shapes), settings=search)
    assert wanted(sa, sb)
