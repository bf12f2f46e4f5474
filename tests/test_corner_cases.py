"""Corner cases found in review: each returned a wrong value or an untyped error before."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg


def test_where_with_a_float_scalar_and_an_int_tensor_gives_floats(device):
    i = gg.tensor([1, 2, 3], device=device)
    out = gg.where(i != 2, i, 0.5)
    assert out.dtype == gg.float32
    np.testing.assert_array_equal(out.numpy(), [1.0, 0.5, 3.0])
    np.testing.assert_array_equal(gg.where(i != 2, 0.5, i).numpy(), [0.5, 2.0, 0.5])


def test_std_of_a_constant_has_zero_gradient(device):
    x = gg.tensor([2.0, 2.0, 2.0], dtype="float64", device=device, requires_grad=True)
    x.std().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])
    y = gg.tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]], dtype="float64", device=device)
    y.requires_grad_()
    assert gg.gradcheck(lambda t: t.std(axis=1, ddof=1) * t[:, :1], y)


def test_var_with_nothing_left_for_ddof_gives_nan_not_zero_division(device):
    x = gg.tensor([3.0], device=device, requires_grad=True)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="Degrees of freedom"):
        x.var(ddof=1).backward()  # NumPy warns about the forward, as it would for the array
    assert np.isnan(x.grad.numpy()).all()


def test_powers_at_zero_have_the_limits_torch_gives(device):
    x = gg.tensor([1.0, 2.0], device=device, requires_grad=True)
    (0**x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    a = gg.tensor([0.0, 1.0], device=device, requires_grad=True)
    b = gg.tensor([0.0, 2.0], device=device, requires_grad=True)
    (a**b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 2.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.0, 0.0])


@pytest.mark.parametrize(
    "call",
    [
        lambda x: x.squeeze(3), lambda x: gg.concat([x, x], axis=5),
        lambda x: gg.stack([x], axis=7), lambda x: gg.take(x, [0], axis=5),
        lambda x: gg.split(x, 1, axis=5),
        lambda x: x.transpose(0, 5), lambda x: x.flatten(5), lambda x: x.unsqueeze(4),
        lambda x: x.sum(axis=2), lambda x: x.cumsum(axis=-3),
    ],
)  # fmt: skip
def test_out_of_range_axes_raise_instead_of_wrapping(device, call):
    x = gg.zeros(3, 1, device=device)
    with pytest.raises(gg.ShapeError, match="out of range"):
        call(x)


def test_numpy_integer_axes_are_accepted(device):
    x = gg.ones(2, 3, device=device)
    assert x.sum(axis=np.int64(1)).shape == (2,)


def test_take_without_axis_indexes_the_flattened_tensor(device):
    x = gg.arange(12, device=device).reshape(3, 4)
    assert gg.take(x, [5, 0]).tolist() == [5, 0]


def test_comparing_with_none_is_false_not_an_error(device):
    x = gg.ones(2, device=device)
    assert (x == None) is False  # noqa: E711
    assert (x != None) is True  # noqa: E711


def test_ragged_lists_raise_shape_error():
    with pytest.raises(gg.ShapeError, match="cannot make a tensor"):
        gg.tensor([[1, 2], [3]])


def test_split_of_an_empty_axis_gives_one_empty_piece(device):
    pieces = gg.split(gg.zeros(0, 3, device=device), 2)
    assert len(pieces) == 1 and pieces[0].shape == (0, 3)


def test_retain_grad_on_a_tensor_without_grad_raises(device):
    with pytest.raises(gg.GraphError, match="retain_grad"):
        gg.ones(2, device=device).retain_grad()
