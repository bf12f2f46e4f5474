"""clamp/clip with Tensor bounds: the bounds get their gradient where they are the result, as in
PyTorch (low where x < low < high, high where x > high or high < low), and broadcast with x."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg

# (x shape, low shape or None, high shape or None): broadcasting either way, one bound alone.
SHAPES = [
    ((5,), (5,), (5,)),
    ((3, 4), (3, 1), (4,)),
    ((4,), (2, 4), None),
    ((2, 3), None, (1, 3)),
    ((1, 4), (3, 1), (3, 4)),
]


def _operand(rng, shape, device, shift):
    return None if shape is None else leaf(rng.standard_normal(shape) + shift, device)


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_tensor_bounds_have_gradients_by_finite_differences(device, rng, shapes):
    x_shape, low_shape, high_shape = shapes
    x = leaf(rng.standard_normal(x_shape), device)
    low = _operand(rng, low_shape, device, -0.5)
    high = _operand(rng, high_shape, device, 0.5)
    bounds = [b for b in (low, high) if b is not None]

    def clamped(x, *given):
        it = iter(given)
        return gg.clamp(x, next(it) if low is not None else None,
                        next(it) if high is not None else None)  # fmt: skip

    check(clamped, x, *bounds)
    out = clamped(x, *bounds)
    out.sum().backward()
    assert all(b.grad is not None and b.grad.shape == b.shape for b in bounds)


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_tensor_bounds_match_torch_with_ties_and_crossed_bounds(device, rng, shapes):
    torch = pytest.importorskip("torch")
    x_shape, low_shape, high_shape = shapes
    # Values on a coarse grid, so x meets the bounds exactly and low > high happens.
    grid = lambda shape: rng.integers(-2, 3, shape).astype(np.float64) / 2  # noqa: E731
    arrays = [grid(x_shape)] + [None if s is None else grid(s) for s in (low_shape, high_shape)]
    ours = [None if a is None else leaf(a, device) for a in arrays]
    theirs = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out = gg.clamp(*ours)
    expected = torch.clamp(*theirs)
    np.testing.assert_array_equal(out.numpy(), expected.detach().numpy())
    weights = rng.standard_normal(expected.shape)
    (out * gg.tensor(weights, device=device)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    for a, b in zip(ours, theirs):
        if a is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["array", "constant tensor"])
def test_array_and_constant_bounds_take_no_gradient_and_keep_the_rule(device, kind):
    if kind == "array" and device != "cpu":
        pytest.skip("a NumPy array bound goes with cpu tensors")
    x = gg.tensor([-1.0, 0.0, 0.25], dtype=gg.float64, device=device, requires_grad=True)
    low = np.array([-0.5, 0.5, -0.5])
    if kind == "constant tensor":
        low = gg.tensor(low, dtype=gg.float64, device=device)
    out = gg.clamp(x, low, 0.5)
    np.testing.assert_array_equal(out.numpy(), [-0.5, 0.5, 0.25])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])
    if kind == "constant tensor":
        assert low.grad is None


def test_a_bound_on_another_device_is_refused():
    if gg.cuda.device_count() == 0:
        pytest.skip("needs a CUDA GPU with CuPy")
    x = gg.ones(3, requires_grad=True)
    with pytest.raises(gg.DeviceError):
        gg.clamp(x, gg.zeros(3, device="cuda"), 1.0)
