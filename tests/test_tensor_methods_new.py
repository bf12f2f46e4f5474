"""PyTorch spellings on Tensor: size() both ways, numel, dim, contiguous, view_as/reshape_as/
expand_as/type_as, new_*, t(), mT, the comparison methods, and gg's PyTorch dtype names;
plus PyTorch's results for edge cases: softmax of 0-d and empty tensors, logsumexp over an
empty axis, and clip's gradient at its bounds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import leaf, torch_or_skip

import gpugrad as gg


def test_size_is_an_int_and_a_call(device):
    x = gg.ones((2, 3), device=device)
    assert x.size == 6 and isinstance(x.size, int)  # NumPy's attribute
    assert x.size() == (2, 3) and x.size(0) == 2 and x.size(-1) == 3  # PyTorch's call
    assert x.size + 1 == 7 and x.size * 2 == 12 and f"{x.size}" == "6"
    assert gg.tensor(5.0, device=device).size == 1 and gg.tensor(5.0).size() == ()
    assert gg.ones((0, 4), device=device).size == 0
    assert x.numel() == 6 and x.dim() == 2 and gg.tensor(1.0).dim() == 0


def test_dtype_names_from_pytorch():
    assert gg.float == np.float32 and gg.double == np.float64 and gg.half == np.float16
    assert gg.int == np.int32 and gg.long == np.int64 and gg.bool == np.bool_
    assert gg.ones(2, dtype=gg.bool).dtype == np.bool_
    assert gg.ones(2).to(gg.int).dtype == np.int32
    assert gg.ones(2, dtype=gg.long).type_as(gg.ones(1, dtype=gg.double)).dtype == np.float64


def test_shape_like_methods(device, rng):
    x = leaf(rng.standard_normal((2, 3)), device)
    assert x.view_as(gg.ones(6)).shape == (6,)
    assert x.reshape_as(gg.ones((3, 2))).shape == (3, 2)
    assert x[:1].expand_as(gg.ones((4, 2, 3))).shape == (4, 2, 3)
    assert x.type_as(gg.ones(1, dtype=gg.float)).dtype == np.float32
    assert x.t().shape == (3, 2) and x.mT.shape == (3, 2)
    assert gg.ones((4, 2, 3)).mT.shape == (4, 3, 2)
    v = gg.ones(3)
    assert v.t() is v
    # Each is differentiable: the gradient comes back in x's shape.
    out = x.view_as(gg.ones(6)).sum() + x.t().sum() + x.mT.sum() + x.type_as(x).sum()
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 4.0))


def test_contiguous(device):
    x = gg.ones((2, 3), device=device)
    assert x.contiguous() is x
    y = x.T.contiguous()
    assert y.data.flags.c_contiguous and y.shape == (3, 2)


def test_new_tensors_follow_dtype_and_device(device):
    x = gg.ones((2,), dtype=gg.double, device=device)
    for made, shape in [
        (x.new_zeros(2, 3), (2, 3)),
        (x.new_zeros((2, 3)), (2, 3)),
        (x.new_ones(4), (4,)),
        (x.new_full((2, 2), 7.0), (2, 2)),
        (x.new_tensor([1, 2, 3]), (3,)),
    ]:
        assert made.shape == shape and made.dtype == np.float64 and made.device == x.device
        assert not made.requires_grad
    np.testing.assert_array_equal(x.new_full((2,), 7.0).numpy(), [7.0, 7.0])
    assert x.new_zeros(3, dtype=gg.long).dtype == np.int64
    assert x.new_ones(3, requires_grad=True).requires_grad


@pytest.mark.parametrize("name", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparison_methods(name, device, rng):
    a_np = rng.integers(-2, 3, (3, 4)).astype(np.float64)
    b_np = rng.integers(-2, 3, (4,)).astype(np.float64)
    a, b = gg.as_tensor(a_np, device=device), gg.as_tensor(b_np, device=device)
    numpy_name = {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
                  "gt": "greater", "ge": "greater_equal"}[name]  # fmt: skip
    reference = getattr(np, numpy_name)
    np.testing.assert_array_equal(getattr(a, name)(b).numpy(), reference(a_np, b_np))
    np.testing.assert_array_equal(getattr(a, name)(1.0).numpy(), reference(a_np, 1.0))


# --- PyTorch's results at the edges -----------------------------------------------------------
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_of_0d_and_empty_tensors(name, device):
    torch = torch_or_skip()
    fn = getattr(gg, name)
    reference = getattr(torch, name)
    x = gg.tensor(2.5, device=device, requires_grad=True)
    out = fn(x, 0)
    assert out.shape == ()
    np.testing.assert_array_equal(out.numpy(), reference(torch.tensor(2.5), 0).numpy())
    np.testing.assert_array_equal(fn(x, -1).numpy(), out.numpy())
    out.backward()
    assert x.grad.shape == ()
    for shape, axis in [((3, 0), -1), ((0, 3), 0), ((0, 3), 1)]:
        got = fn(gg.ones(shape, device=device), axis)
        assert got.shape == reference(torch.ones(shape), axis).shape


def test_logsumexp_over_an_empty_axis_is_minus_inf(device):
    torch = torch_or_skip()
    x = gg.ones((3, 0), device=device, requires_grad=True)
    out = gg.logsumexp(x, axis=1)
    expected = torch.logsumexp(torch.ones(3, 0), dim=1)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    assert gg.logsumexp(x, axis=1, keepdims=True).shape == (3, 1)
    assert gg.logsumexp(x).numpy() == -np.inf
    out.sum().backward()
    assert x.grad.shape == (3, 0)


def test_clip_gradient_is_one_at_the_bounds(device):
    """PyTorch 2.13's rule, which gpugrad follows: min <= x <= max passes the gradient."""
    values = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    x = leaf(values, device)
    gg.clip(x, -1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_clip_gradient_at_the_bounds_matches_torch(device):
    torch = torch_or_skip()
    values = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    x = leaf(values, device)
    gg.clip(x, -1.0, 1.0).sum().backward()
    t = torch.tensor(values, requires_grad=True)
    torch.clamp(t, -1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
