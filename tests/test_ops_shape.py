"""Shape ops: values against NumPy, first and second derivatives, errors, and views' versions."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, leaf, same

import gpugrad as gg

SHAPES = [(3, 4), (2, 3, 4), (1, 5, 1)]


# --- reshape, flatten ----------------------------------------------------------------------------
@pytest.mark.parametrize("contiguous", [True, False])
def test_reshape_values_and_gradients(device, rng, contiguous):
    a = rng.standard_normal((2, 3, 4))
    x = leaf(a, device, contiguous)
    if not contiguous:
        assert not x.data.flags.c_contiguous
    same(x.reshape(6, 4), a.reshape(6, 4))
    same(x.reshape((4, -1)), a.reshape(4, -1))
    same(gg.reshape(x, (-1,)), a.reshape(-1))
    same(x.reshape([3, 8]), a.reshape(3, 8))
    check(lambda t: t.reshape(4, -1), x)
    check(lambda t: gg.reshape(t, (24,)) * t.reshape(-1), x)


def test_reshape_bad_size_raises_shape_error(device):
    x = gg.zeros(2, 3, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(2, 3\)"):
        x.reshape(4, 2)


@pytest.mark.parametrize(("start", "end"), [(0, -1), (1, -1), (0, 1), (1, 2), (-2, -1), (2, 2)])
def test_flatten(device, rng, start, end):
    a = rng.standard_normal((2, 3, 4))
    x = leaf(a, device, contiguous=False)
    ref = (*a.shape[: start % 3], -1, *a.shape[end % 3 + 1 :])
    same(x.flatten(start, end), a.reshape(ref))
    check(lambda t: gg.flatten(t, start, end), x)


def test_flatten_defaults(device, rng):
    a = rng.standard_normal((2, 3, 4))
    x = leaf(a, device)
    same(x.flatten(), a.ravel())
    same(gg.flatten(x, 1), a.reshape(2, 12))


# --- transpose, permute, swapaxes ----------------------------------------------------------------
def test_transpose_no_args_reverses(device, rng):
    a = rng.standard_normal((2, 3, 4))
    x = leaf(a, device)
    same(x.transpose(), a.transpose())
    same(x.T, a.T)
    same(gg.transpose(x), a.T)
    check(lambda t: t.T, x)


def test_transpose_two_ints_swap_like_pytorch(device, rng):
    a = rng.standard_normal((2, 3, 4))
    x = leaf(a, device)
    same(x.transpose(0, 2), np.swapaxes(a, 0, 2))
    same(x.transpose(-1, 1), np.swapaxes(a, 2, 1))
    same(leaf(a[0], device).transpose(0, 1), a[0].T)
    check(lambda t: t.transpose(0, 2), x)


def test_transpose_tuple_is_a_permutation(device, rng):
    a = rng.standard_normal((2, 3, 4))
    x = leaf(a, device, contiguous=False)
    same(x.transpose((1, 2, 0)), a.transpose(1, 2, 0))
    same(gg.transpose(x, (2, 0, 1)), a.transpose(2, 0, 1))
    same(x.transpose(1, 2, 0), a.transpose(1, 2, 0))
    # (1, 2, 0) is not its own inverse, so a wrong backward permutation shows up.
    check(lambda t: t.transpose((1, 2, 0)), x)


def test_permute_and_swapaxes(device, rng):
    a = rng.standard_normal((2, 3, 4))
    x = leaf(a, device)
    same(x.permute(2, 0, 1), a.transpose(2, 0, 1))
    same(x.permute((1, 2, 0)), a.transpose(1, 2, 0))
    same(gg.permute(x, -1, 0, 1), a.transpose(2, 0, 1))
    same(x.swapaxes(0, -1), np.swapaxes(a, 0, -1))
    same(gg.swapaxes(x, 1, 2), np.swapaxes(a, 1, 2))
    check(lambda t: t.permute(2, 0, 1), x)
    check(lambda t: gg.swapaxes(t, 0, 1), x)


def test_bad_permutations_raise(device):
    x = gg.zeros(2, 3, 4, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(2, 3, 4\)"):
        x.transpose((0, 0, 1))
    with pytest.raises(gg.ShapeError, match=r"\(2, 3, 4\)"):
        x.permute(1, 0)


# --- squeeze, unsqueeze --------------------------------------------------------------------------
def test_squeeze(device, rng):
    a = rng.standard_normal((1, 3, 1, 2))
    x = leaf(a, device)
    same(x.squeeze(), a.squeeze())
    same(x.squeeze(0), a.squeeze(0))
    same(gg.squeeze(x, -2), a.squeeze(-2))
    same(x.squeeze((0, 2)), a.squeeze((0, 2)))
    check(lambda t: t.squeeze(), x)
    check(lambda t: t.squeeze(2), x)


def test_squeeze_of_non_1_axis_raises(device):
    x = gg.zeros(1, 3, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(1, 3\)"):
        x.squeeze(1)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_unsqueeze_and_expand_dims(device, rng, axis):
    a = rng.standard_normal((3, 2))
    x = leaf(a, device, contiguous=False)
    same(x.unsqueeze(axis), np.expand_dims(a, axis))
    same(gg.expand_dims(x, axis), np.expand_dims(a, axis))
    same(x.expand_dims(axis), np.expand_dims(a, axis))
    check(lambda t: gg.unsqueeze(t, axis), x)


def test_unsqueeze_out_of_range_raises(device):
    with pytest.raises(gg.ShapeError, match=r"\(3, 2\)"):
        gg.zeros(3, 2, device=device).unsqueeze(3)


# --- broadcast_to, expand ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "target"),
    [((3, 1), (3, 4)), ((4,), (2, 3, 4)), ((1, 1), (2, 3)), ((2, 1, 3), (4, 2, 5, 3))],
)
def test_broadcast_to(device, rng, shape, target):
    a = rng.standard_normal(shape)
    x = leaf(a, device)
    same(x.broadcast_to(target), np.broadcast_to(a, target))
    same(gg.broadcast_to(x, *target), np.broadcast_to(a, target))
    check(lambda t: gg.broadcast_to(t, target), x)


def test_broadcast_to_incompatible_raises(device):
    with pytest.raises(gg.ShapeError, match=r"\(3, 2\)"):
        gg.zeros(3, 2, device=device).broadcast_to((3, 4))


def test_expand_minus_one_keeps_the_size(device, rng):
    a = rng.standard_normal((3, 1))
    x = leaf(a, device)
    same(x.expand(-1, 4), np.broadcast_to(a, (3, 4)))
    same(x.expand(2, -1, 5), np.broadcast_to(a, (2, 3, 5)))
    same(gg.expand(x, (3, 2)), np.broadcast_to(a, (3, 2)))
    check(lambda t: t.expand(2, -1, 5), x)


# --- concatenate, stack --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [gg.concat, gg.concatenate, gg.cat])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(device, rng, fn, axis):
    sizes = (1, 2, 3)
    arrays = []
    for n in sizes:
        shape = [2, 3]
        shape[axis] = n
        arrays.append(rng.standard_normal(shape))
    xs = [leaf(a, device, contiguous=(i != 1)) for i, a in enumerate(arrays)]
    same(fn(xs, axis=axis), np.concatenate(arrays, axis=axis))
    check(lambda *ts: fn(list(ts), axis), *xs)


def test_concatenate_mismatched_shapes_raise(device):
    a, b = gg.zeros(2, 3, device=device), gg.zeros(3, 2, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(2, 3\).*\(3, 2\)"):
        gg.concatenate([a, b], axis=0)


@pytest.mark.parametrize("axis", [0, 1, -1, 2, -3])
def test_stack(device, rng, axis):
    arrays = [rng.standard_normal((2, 3)) for _ in range(3)]
    xs = [leaf(a, device, contiguous=(i != 0)) for i, a in enumerate(arrays)]
    same(gg.stack(xs, axis=axis), np.stack(arrays, axis=axis))
    check(lambda *ts: gg.stack(ts, axis), *xs)


def test_stack_mismatched_shapes_raise(device):
    a, b = gg.zeros(2, 3, device=device), gg.zeros(3, 2, device=device)
    with pytest.raises(gg.ShapeError):
        gg.stack([a, b])


# --- split, chunk --------------------------------------------------------------------------------
def test_split_int_size_leaves_a_smaller_last_piece(device, rng):
    a = rng.standard_normal((7, 3))
    x = leaf(a, device)
    pieces = gg.split(x, 3)
    assert [p.shape for p in pieces] == [(3, 3), (3, 3), (1, 3)]
    for p, ref in zip(pieces, np.split(a, [3, 6])):
        same(p, ref)
    check(lambda t: tuple(gg.split(t, 3)), x)
    check(lambda t: tuple(t.split(2, axis=1)), x)


def test_split_list_of_sizes(device, rng):
    a = rng.standard_normal((2, 6))
    x = leaf(a, device, contiguous=False)
    pieces = x.split([1, 3, 2], axis=-1)
    for p, ref in zip(pieces, np.split(a, [1, 4], axis=1)):
        same(p, ref)
    # A weighted sum of the pieces, so each piece's gradient must land in its own place.
    check(lambda t: [p * (i + 1) for i, p in enumerate(gg.split(t, [1, 3, 2], 1))], x)


def test_split_sizes_not_summing_raise(device):
    x = gg.zeros(2, 6, device=device)
    with pytest.raises(gg.ShapeError, match="6"):
        gg.split(x, [1, 2], axis=1)
    with pytest.raises(gg.ShapeError):
        gg.split(x, [4, 4], axis=1)
    with pytest.raises(gg.ShapeError):
        gg.split(x, 0)


@pytest.mark.parametrize(
    ("n", "chunks", "sizes"),
    [(6, 3, [2, 2, 2]), (5, 3, [2, 2, 1]), (6, 4, [2, 2, 2]), (2, 4, [1, 1]), (7, 2, [4, 3])],
)
def test_chunk_has_pytorch_semantics(device, rng, n, chunks, sizes):
    a = rng.standard_normal((3, n))
    x = leaf(a, device)
    pieces = gg.chunk(x, chunks, axis=1)
    assert [p.shape[1] for p in pieces] == sizes
    for p, ref in zip(pieces, np.split(a, np.cumsum(sizes)[:-1], axis=1)):
        same(p, ref)
    check(lambda t: tuple(t.chunk(chunks, 1)), x)


# --- pad -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pad_width", [1, (1, 2), ((0, 1), (2, 0)), ((2, 2), (0, 0)), [[1, 0], [0, 3]]]
)
def test_pad(device, rng, pad_width):
    a = rng.standard_normal((2, 3))
    x = leaf(a, device, contiguous=False)
    same(gg.pad(x, pad_width), np.pad(a, pad_width))
    same(gg.pad(x, pad_width, value=-1.5), np.pad(a, pad_width, constant_values=-1.5))
    check(lambda t: gg.pad(t, pad_width, value=2.0), x)


def test_pad_wrong_width_raises(device):
    x = gg.zeros(2, 3, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(2, 3\)"):
        gg.pad(x, ((1, 1), (1, 1), (1, 1)))
    with pytest.raises(gg.ShapeError):
        gg.pad(x, -1)


# --- flip, repeat, tile --------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (0, 1, 2)])
def test_flip(device, rng, axis):
    a = rng.standard_normal((2, 3, 4))
    x = leaf(a, device)
    same(gg.flip(x, axis), np.flip(a, axis))
    same(x.flip(axis), np.flip(a, axis))
    check(lambda t: gg.flip(t, axis), x)


@pytest.mark.parametrize(
    ("shape", "repeats", "axis"),
    [
        ((2, 3), 2, None),
        ((2, 3), 2, 0),
        ((2, 3), [1, 0, 3], 1),
        ((2, 3), [2, 1], -2),
        ((3,), [3, 1, 2], 0),
        ((2, 2), [1, 2, 0, 1], None),
    ],
)
def test_repeat_has_numpy_semantics(device, rng, shape, repeats, axis):
    a = rng.standard_normal(shape)
    x = leaf(a, device, contiguous=len(shape) == 1)
    same(gg.repeat(x, repeats, axis), np.repeat(a, repeats, axis))
    same(x.repeat(repeats, axis=axis), np.repeat(a, repeats, axis))
    # Repeated elements get the sum of their copies' gradients.
    check(lambda t: gg.repeat(t, repeats, axis), x)


@pytest.mark.parametrize(
    ("shape", "reps"),
    [((2, 3), 2), ((2, 3), (2, 1)), ((2, 3), (1, 3)), ((3,), (2, 2)), ((2, 1), (2, 1, 3))],
)
def test_tile_has_numpy_semantics(device, rng, shape, reps):
    a = rng.standard_normal(shape)
    x = leaf(a, device, contiguous=len(shape) == 1)
    same(gg.tile(x, reps), np.tile(a, reps))
    same(x.tile(reps), np.tile(a, reps))
    check(lambda t: gg.tile(t, reps), x)


# --- combined, and several shapes ----------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_chain_of_shape_ops(device, rng, shape):
    a = rng.standard_normal(shape)
    x = leaf(a, device, contiguous=False)
    ref = np.flip(np.tile(a.T, 2), 0).reshape(-1)
    same(gg.flip(x.T.tile(2), 0).reshape(-1), ref)
    check(lambda t: gg.flip(t.T.tile(2), 0).reshape(-1) ** 2, x)


# --- views share the base's version counter ------------------------------------------------------
VIEWS = {
    "reshape": lambda b: b.reshape(6),
    "transpose": lambda b: b.T,
    "permute": lambda b: b.permute(1, 0),
    "unsqueeze": lambda b: b.unsqueeze(0),
    "slice": lambda b: b[1:, ::2],
    "broadcast_to": lambda b: b.broadcast_to((4, 2, 3)),
    "flip": lambda b: b.flip(0),
}


@pytest.mark.parametrize("make_view", list(VIEWS.values()), ids=list(VIEWS))
def test_views_share_the_version_counter(device, rng, make_view):
    base = leaf(rng.standard_normal((2, 3)), device)
    v = make_view(base)
    assert v.version == base.version == 0
    with gg.no_grad():
        base.add_(1)
    assert v.version == base.version == 1


@pytest.mark.parametrize("name", list(VIEWS))
def test_backward_through_a_saved_view_after_in_place_raises(device, rng, name):
    make_view = VIEWS[name]
    base = leaf(rng.standard_normal((2, 3)), device)
    w = leaf(rng.standard_normal((2, 3)), device)
    v = make_view(base)
    y = v * v  # saves the view
    with gg.no_grad():
        base.add_(1)
    with pytest.raises(gg.InplaceError, match="in place"):
        y.sum().backward()
    # The same with the view made of a non-leaf, and the change made through the view
    # (a broadcast view is read-only, so that one is changed through its base).
    h = w * 2
    v = make_view(h)
    y = (v * v).sum()
    with gg.no_grad():
        (h if name == "broadcast_to" else v).mul_(3)
    with pytest.raises(gg.InplaceError):
        y.backward()


def test_reshape_copy_does_not_share_the_version(device, rng):
    # A reshape of a non-contiguous tensor is a copy: changing the base must not stop
    # a backward through the copy.
    base = leaf(rng.standard_normal((3, 4)), device, contiguous=False)
    if base.data.flags.c_contiguous:
        pytest.skip("this device made the array contiguous")
    r = base.reshape(12)
    y = (r * r).sum()
    with gg.no_grad():
        base.add_(1)
    y.backward()
    np.testing.assert_allclose(base.grad.numpy(), 2 * (base.numpy() - 1), rtol=1e-12)
