"""Indexing: x[...] in all its forms, take / index_select / take_along_axis / gather, one_hot.

Values are compared with NumPy (PyTorch's rules written out in NumPy for gather), gradients
with finite differences, first and second order.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, leaf, same

import gpugrad as gg

# --- basic indexing ------------------------------------------------------------------------------
BASIC = {
    "int": 1,
    "negative int": -1,
    "two ints": (1, -2),
    "three ints": (0, 2, 3),
    "slice": slice(1, 3),
    "step": (slice(None), slice(None, None, 2)),
    "negative step": (slice(None, None, -1), slice(3, 0, -2)),
    "none": (None, 1),
    "ellipsis": (Ellipsis, 1),
    "none ellipsis slice": (None, Ellipsis, slice(1, 3)),
    "int ellipsis none": (-1, Ellipsis, None),
    "all": Ellipsis,
}


@pytest.mark.parametrize("index", list(BASIC.values()), ids=list(BASIC))
@pytest.mark.parametrize("contiguous", [True, False])
def test_basic_indexing(device, rng, index, contiguous):
    a = rng.standard_normal((3, 4, 5))
    x = leaf(a, device, contiguous)
    same(x[index], a[index])
    check(lambda t: t[index], x)


def test_basic_index_of_a_1d_tensor_gives_a_0d_tensor(device, rng):
    a = rng.standard_normal(4)
    x = leaf(a, device)
    y = x[-2]
    assert y.shape == ()
    assert y.item() == a[-2]
    y.backward()
    same(x.grad, np.eye(4)[-2])


# --- advanced indexing ---------------------------------------------------------------------------
ADVANCED = {
    "list": lambda dev: [2, 0],
    "list repeated": lambda dev: [0, 0, 1, 0],
    "numpy": lambda dev: np.array([1, -1, 1]),
    "tensor": lambda dev: gg.tensor([2, 1, 2], device=dev),
    "2d tensor": lambda dev: gg.tensor([[0, 1], [1, 0]], device=dev),
    "two arrays": lambda dev: ([0, 2, 0], [1, 1, 3]),
    "mixed": lambda dev: ([0, 2], slice(1, None)),
    "mixed middle": lambda dev: (slice(None), [3, 0, 3]),
    "bool numpy": lambda dev: np.array([True, False, True]),
    "bool tensor": lambda dev: gg.tensor([False, True, True], device=dev),
    "bool 2d": lambda dev: np.arange(12).reshape(3, 4) % 3 == 0,
    "bool and slice": lambda dev: (np.array([True, False, True]), slice(None, 2)),
}


def _numpy_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    out = tuple(p.numpy() if isinstance(p, gg.Tensor) else p for p in parts)
    return out if isinstance(index, tuple) else out[0]


@pytest.mark.parametrize("make", list(ADVANCED.values()), ids=list(ADVANCED))
def test_advanced_indexing(device, rng, make):
    a = rng.standard_normal((3, 4, 2))
    x = leaf(a, device, contiguous=False)
    index = make(device)
    same(x[index], a[_numpy_index(index)])
    check(lambda t: t[index], x)


def test_repeated_indices_accumulate_gradients(device, rng):
    x = leaf(rng.standard_normal((3, 2)), device)
    x[[0, 0, 1]].sum().backward()
    same(x.grad, [[2, 2], [1, 1], [0, 0]])
    x.grad = None
    w = rng.standard_normal((5, 2))
    (x[gg.tensor([2, 0, 2, 2, 1], device=device)] * gg.tensor(w, device=device)).sum().backward()
    same(x.grad, [w[1], w[4], w[0] + w[2] + w[3]])


def test_empty_index_list_picks_nothing(device, rng):
    a = rng.standard_normal((3, 2))
    x = leaf(a, device)
    same(x[[]], a[[]])
    same(x[:, []], a[:, []])
    x[[]].sum().backward()
    same(x.grad, np.zeros((3, 2)))


def test_indexing_with_a_0d_int_tensor(device, rng):
    a = rng.standard_normal((3, 2))
    x = leaf(a, device)
    same(x[gg.tensor(2, device=device)], a[2])


def test_float_index_arrays_raise_dtype_error(device):
    x = gg.zeros(3, device=device)
    with pytest.raises(gg.DTypeError, match="float"):
        x[np.array([0.0, 1.0])]
    with pytest.raises(gg.DTypeError, match="float"):
        x[gg.tensor([0.0, 1.0], device=device)]
    with pytest.raises(gg.DTypeError, match="float"):
        x[[0.5, 1.5]]


@pytest.mark.parametrize(
    "index", [3, -4, (0, 5), [0, 3], np.array([-5]), (slice(None), [7])], ids=str
)
def test_out_of_range_index_raises_index_and_shape_error(device, index):
    x = gg.zeros(3, 4, device=device)
    with pytest.raises(IndexError) as info:
        x[index]
    assert isinstance(info.value, gg.ShapeError)
    assert "(3, 4)" in str(info.value)


def test_out_of_range_index_tensor_raises(device):
    x = gg.zeros(3, device=device)
    with pytest.raises(gg.ShapeError):
        x[gg.tensor([0, 3], device=device)]


def test_wrong_bool_mask_shape_raises(device):
    x = gg.zeros(3, 4, device=device)
    with pytest.raises(IndexError) as info:
        x[np.array([True, False])]
    assert isinstance(info.value, gg.ShapeError)


def test_index_tensor_on_another_device_raises(device):
    if not gg.cuda.is_available():
        pytest.skip("needs a second device (cuda)")
    other = "cpu" if device == "cuda" else "cuda"
    x = gg.zeros(3, device=device)
    index = gg.tensor([0, 1], device=other)
    with pytest.raises(gg.DeviceError):
        x[index]
    with pytest.raises(gg.DeviceError):
        gg.take(x, index)


# --- take, index_select --------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_take_and_index_select(device, rng, axis):
    a = rng.standard_normal((3, 4, 2))
    x = leaf(a, device, contiguous=False)
    index = [1, 0, 1, 1]
    same(gg.take(x, index, axis), np.take(a, index, axis))
    same(x.take(np.array(index), axis=axis), np.take(a, index, axis))
    tindex = gg.tensor(index, device=device)
    same(gg.index_select(x, axis, tindex), np.take(a, index, axis))
    same(x.index_select(axis, tindex), np.take(a, index, axis))
    check(lambda t: gg.index_select(t, axis, tindex), x)


def test_take_float_index_raises(device):
    with pytest.raises(gg.DTypeError):
        gg.take(gg.zeros(3, device=device), np.array([1.0]))


# --- take_along_axis, gather ---------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_take_along_axis(device, rng, axis):
    a = rng.standard_normal((3, 4))
    x = leaf(a, device)
    shape = [3, 4]
    shape[axis] = 5  # more picks than elements: some repeat, and their gradients add up
    idx = rng.integers(0, a.shape[axis], size=shape)
    same(gg.take_along_axis(x, idx, axis), np.take_along_axis(a, idx, axis))
    tidx = gg.tensor(idx, device=device)
    same(x.take_along_axis(tidx, axis), np.take_along_axis(a, idx, axis))
    check(lambda t: gg.take_along_axis(t, tidx, axis), x)


def test_take_along_axis_broadcasts_indices(device, rng):
    a = rng.standard_normal((3, 4))
    x = leaf(a, device)
    idx = np.array([[2, 0, 3]])  # shape (1, 3) along axis 1: broadcast over axis 0
    same(gg.take_along_axis(x, idx, 1), np.take_along_axis(a, idx, 1))
    check(lambda t: gg.take_along_axis(t, idx, 1), x)


def test_take_along_axis_wrong_ndim_raises(device):
    with pytest.raises(gg.ShapeError, match=r"\(3, 4\)"):
        gg.take_along_axis(gg.zeros(3, 4, device=device), np.array([0, 1]), 0)


def _torch_gather(a, axis, index):
    """PyTorch's gather written out: out[i][j][k] = a[i][index[i][j][k]][k] for axis 1."""
    out = np.empty(index.shape)
    for pos in np.ndindex(index.shape):
        src = list(pos)
        src[axis] = index[pos]
        out[pos] = a[tuple(src)]
    return out


@pytest.mark.parametrize(
    ("axis", "index_shape"), [(0, (2, 3)), (1, (3, 4)), (1, (2, 2)), (-1, (1, 6)), (0, (5, 4))]
)
def test_gather_has_pytorch_semantics(device, rng, axis, index_shape):
    a = rng.standard_normal((3, 4))
    x = leaf(a, device, contiguous=False)
    index = rng.integers(0, a.shape[axis], size=index_shape)
    expected = _torch_gather(a, axis % 2, index)
    same(gg.gather(x, axis, index), expected)
    tindex = gg.tensor(index, device=device)
    same(x.gather(axis, tindex), expected)
    check(lambda t: gg.gather(t, axis, tindex), x)


def test_gather_3d(device, rng):
    a = rng.standard_normal((2, 3, 4))
    x = leaf(a, device)
    index = rng.integers(0, 3, size=(2, 5, 2))
    same(gg.gather(x, 1, index), _torch_gather(a, 1, index))
    check(lambda t: gg.gather(t, 1, index), x)


def test_gather_out_of_range_raises(device):
    x = gg.zeros(3, 4, device=device)
    with pytest.raises(gg.ShapeError):
        gg.gather(x, 1, np.array([[4]]))
    with pytest.raises(gg.DTypeError):
        gg.gather(x, 1, np.array([[1.0]]))


# --- split / chunk through indexing: views share versions ----------------------------------------
def test_basic_index_view_shares_version_and_advanced_does_not(device, rng):
    base = leaf(rng.standard_normal((4, 3)), device)
    view = base[1:3]
    copy = base[[1, 2]]
    with gg.no_grad():
        base.add_(1)
    assert view.version == base.version == 1
    assert copy.version == 0


def test_backward_through_saved_slice_after_in_place_raises(device, rng):
    base = leaf(rng.standard_normal((4, 3)), device)
    view = base[::2, 1:]
    y = (view * view).sum()
    with gg.no_grad():
        base.add_(1)
    with pytest.raises(gg.InplaceError):
        y.backward()
    # An advanced index made a copy, so the change does not matter to its backward.
    base2 = leaf(rng.standard_normal((4, 3)), device)
    picked = base2[[0, 2]]
    expected = 2 * base2.numpy()[[0, 2]]
    y = (picked * picked).sum()
    with gg.no_grad():
        base2.add_(1)
    y.backward()
    same(base2.grad, np.array([expected[0], 0 * expected[0], expected[1], 0 * expected[0]]))


# --- one_hot -------------------------------------------------------------------------------------
def test_one_hot(device):
    labels = np.array([[0, 2], [1, 3]])
    out = gg.one_hot(gg.tensor(labels, device=device), 5)
    assert out.dtype == np.int64
    assert not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), np.eye(5, dtype=np.int64)[labels])
    inferred = gg.one_hot(gg.tensor([1, 0, 2], device=device))
    np.testing.assert_array_equal(inferred.numpy(), np.eye(3, dtype=np.int64)[[1, 0, 2]])


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_one_hot_out_of_range_raises(device, labels):
    with pytest.raises(gg.ShapeError, match=r"\[0, 3\)"):
        gg.one_hot(gg.tensor(labels, device=device), 3)


def test_one_hot_float_labels_raise(device):
    with pytest.raises(gg.DTypeError, match="float"):
        gg.one_hot(gg.tensor([0.0, 1.0], device=device), 3)
