"""gradcheck and gradgradcheck: they pass on correct gradients and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import Function


def leaf(a, device):
    return gg.tensor(a, dtype="float64", device=device, requires_grad=True)


class WrongSin(Function):
    """sin with the sign of its derivative flipped: d sin = -cos (wrong)."""

    def forward(self, x):
        self.save(x)
        return self.xp.sin(x)

    def backward(self, xp, g, x):
        return -g * xp.cos(x)


class SinWrongAtOneElement(Function):
    """sin whose gradient is off by 1 at one element, given as `at`."""

    def forward(self, x, at):
        self.save(x)
        bump = self.xp.zeros(x.shape)
        bump[at] = 1.0
        self.bump = bump
        return self.xp.sin(x)

    def backward(self, xp, g, x):
        return g * xp.cos(x) + g * self.bump


class SquareWithConstantSlope(Function):
    """x**2 whose backward uses 2x computed from raw arrays in forward: the first derivative is
    right, but with create_graph the slope is a constant, so the second derivative is lost."""

    def forward(self, x):
        self.slope = 2 * x
        return x * x

    def backward(self, xp, g):
        return g * self.slope


class SlightlyOffExp(Function):
    """exp whose gradient is too large by a relative 1e-5."""

    def forward(self, x):
        out = self.xp.exp(x)
        self.save(out)
        return out

    def backward(self, xp, g, out):
        return g * out * (1 + 1e-5)


# --- gradcheck -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "shapes"),
    [
        (lambda x: (x * x).sin(), [(3, 4)]),
        (lambda a, b: a * b + a.exp(), [(2, 3), (3,)]),  # broadcasting
        (lambda a, b: (a @ b).tanh(), [(2, 3), (3, 4)]),
        (lambda x: x.sum(axis=0, keepdims=True) / x, [(3, 1)]),  # size-1 axis
    ],
)
def test_gradcheck_passes_on_correct_functions(device, rng, fn, shapes):
    inputs = [leaf(rng.uniform(0.5, 1.5, s), device) for s in shapes]
    assert gg.gradcheck(fn, inputs) is True


def test_gradcheck_on_non_contiguous_input(device, rng):
    a = rng.standard_normal((3, 4))
    x = gg.as_tensor(a.T, device=device).requires_grad_()
    assert gg.gradcheck(lambda t: t.exp() * t, (x,))


def test_gradcheck_only_checks_inputs_that_require_grad(device, rng):
    x = leaf(rng.standard_normal(3), device)
    c = gg.tensor(rng.standard_normal(3), dtype="float64", device=device)
    assert gg.gradcheck(lambda x, c, k: x * c * k, (x, c, 2.0))


def test_gradcheck_multiple_outputs(device, rng):
    x = leaf(rng.standard_normal(4), device)
    assert gg.gradcheck(lambda t: (t.sin(), t * t), (x,))
    with pytest.raises(gg.GradcheckError):
        gg.gradcheck(lambda t: (t.sin(), WrongSin.apply(t)), (x,))


def test_gradcheck_catches_a_wrong_backward(device, rng):
    x = leaf(rng.uniform(-1, 1, 5), device)
    with pytest.raises(gg.GradcheckError, match="input 0"):
        gg.gradcheck(WrongSin.apply, (x,))


def test_gradcheck_error_names_the_input_and_index(device, rng):
    a = leaf(rng.uniform(-1, 1, (2, 3)), device)
    b = leaf(rng.uniform(-1, 1, (2, 3)), device)

    def fn(a, b):
        return a * SinWrongAtOneElement.apply(b, at=(1, 2))

    with pytest.raises(gg.GradcheckError) as info:
        gg.gradcheck(fn, (a, b))
    message = str(info.value)
    assert "input 1" in message
    assert "index (1, 2)" in message
    assert "(2, 3)" in message  # the input's shape
    assert "analytic" in message and "numerical" in message


def test_gradcheck_uses_its_tolerances(device, rng):
    x = leaf(rng.uniform(-1, 1, 4), device)
    assert gg.gradcheck(SlightlyOffExp.apply, (x,))  # within the default rtol=1e-3
    with pytest.raises(gg.GradcheckError):
        gg.gradcheck(SlightlyOffExp.apply, (x,), atol=1e-9, rtol=1e-7)


def test_gradcheck_needs_float64(device):
    x = gg.tensor([1.0, 2.0], device=device, requires_grad=True)  # float32
    with pytest.raises(gg.DTypeError, match="float32"):
        gg.gradcheck(lambda t: t * t, (x,))


def test_gradcheck_needs_an_input_that_requires_grad(device):
    x = gg.tensor([1.0, 2.0], dtype="float64", device=device)
    with pytest.raises(gg.GradcheckError, match="requires grad"):
        gg.gradcheck(lambda t: t * t, (x,))


def test_gradcheck_restores_inputs_and_leaves_grad_alone(device, rng):
    a = rng.standard_normal((2, 2))
    x = leaf(a, device)
    gg.gradcheck(lambda t: t.exp(), (x,))
    np.testing.assert_array_equal(x.numpy(), a)
    assert x.grad is None


# --- gradgradcheck -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "shapes"),
    [
        (lambda x: x * x * x, [(2, 3)]),
        (lambda a, b: (a * b).sin(), [(2, 3), (3,)]),
        (lambda a, b: (a @ b).tanh().sum(), [(2, 3), (3, 2)]),
    ],
)
def test_gradgradcheck_passes_on_correct_functions(device, rng, fn, shapes):
    inputs = [leaf(rng.uniform(0.5, 1.5, s), device) for s in shapes]
    assert gg.gradgradcheck(fn, inputs) is True


def test_constant_slope_function_has_right_first_derivative(device, rng):
    x = leaf(rng.uniform(-1, 1, 4), device)
    assert gg.gradcheck(SquareWithConstantSlope.apply, (x,))


def test_gradgradcheck_catches_a_backward_that_is_not_differentiable(device, rng):
    x = leaf(rng.uniform(-1, 1, 4), device)
    with pytest.raises(gg.GradcheckError, match="input 0"):
        gg.gradgradcheck(SquareWithConstantSlope.apply, (x,))


def test_gradgradcheck_needs_float64(device):
    x = gg.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(gg.DTypeError):
        gg.gradgradcheck(lambda t: t * t, (x,))
