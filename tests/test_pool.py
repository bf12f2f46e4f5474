"""Pooling against direct loop references (and PyTorch when installed): forward values, the
first-maximum tie rule, first and second derivatives (float64), modules, and the errors."""

import math

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
from gpugrad.nn.pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from gpugrad.ops import pool as pool_module
from gpugrad.ops.conv import Col2Im, ConvGeometry, Im2Col
from gpugrad.ops.pool import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)  # fmt: skip


# --- loop references, written from the definitions -------------------------------------------
def pairs(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def ref_pool(a, kernel, stride=None, padding=0, mode="max", count_include_pad=True):
    """Pool the last two axes of `a` pixel by pixel; returns (output, gradient of sum(g·out))
    as a function of g, with the max gradient going to each window's first maximum."""
    (kh, kw), (ph, pw) = pairs(kernel), pairs(padding)
    sh, sw = pairs(kernel if stride is None else stride)
    lead, (h, w) = a.shape[:-2], a.shape[-2:]
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((*lead, oh, ow))
    picks = {}  # (lead index, i, j) -> the input positions that get the gradient, with weight
    for idx in np.ndindex(*lead):
        for i in range(oh):
            for j in range(ow):
                cells = [
                    (r, c)
                    for r in range(i * sh - ph, i * sh - ph + kh)
                    for c in range(j * sw - pw, j * sw - pw + kw)
                ]  # row-major order
                real = [(r, c) for r, c in cells if 0 <= r < h and 0 <= c < w]
                if mode == "max":
                    best = max(real, key=lambda rc: a[idx + rc])  # max() keeps the first
                    out[(*idx, i, j)] = a[idx + best]
                    picks[(*idx, i, j)] = [(best, 1.0)]
                else:
                    n = kh * kw if count_include_pad else len(real)
                    out[(*idx, i, j)] = sum(a[idx + rc] for rc in real) / n
                    picks[(*idx, i, j)] = [(rc, 1.0 / n) for rc in real]

    def grad(g):
        gx = np.zeros(a.shape)
        for key, cells in picks.items():
            for rc, weight in cells:
                gx[key[:-2] + rc] += weight * g[key]
        return gx

    return out, grad


def ref_adaptive(a, oh, ow):
    h, w = a.shape[-2:]
    out = np.zeros((*a.shape[:-2], oh, ow))
    for i in range(oh):
        r0, r1 = (i * h) // oh, math.ceil((i + 1) * h / oh)
        for j in range(ow):
            c0, c1 = (j * w) // ow, math.ceil((j + 1) * w / ow)
            out[..., i, j] = a[..., r0:r1, c0:c1].mean(axis=(-2, -1))
    return out


def distinct(rng, shape):
    """Values far apart (no ties), so max pooling is differentiable at them."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 + 0.01 * rng.random(shape)


# (shape, kernel, stride, padding): square and not, overlapping (stride < kernel), gaps
# (stride > kernel), padding, batch 1, unbatched (C, H, W), a window the size of the input.
CASES = [
    ((2, 3, 6, 6), 2, None, 0),
    ((2, 2, 7, 5), 3, 2, 1),
    ((1, 2, 6, 7), (3, 2), (1, 2), (1, 1)),
    ((1, 1, 5, 5), 3, 1, 1),
    ((2, 1, 7, 8), 2, 3, 0),
    ((3, 5, 4), (2, 4), 1, (1, 2)),
    ((1, 2, 3, 4), (3, 4), None, 0),
    ((1, 1, 4, 4), 1, 1, 0),
]


@pytest.mark.parametrize("shape, kernel, stride, padding", CASES)
def test_max_pool2d_matches_loop_reference(device, rng, shape, kernel, stride, padding):
    a = rng.standard_normal(shape)
    x = leaf(a, device)
    out = max_pool2d(x, kernel, stride, padding)
    expected, grad = ref_pool(a, kernel, stride, padding, "max")
    np.testing.assert_array_equal(out.numpy(), expected)
    g = rng.standard_normal(expected.shape)
    out.backward(gg.tensor(g, device=device))
    np.testing.assert_allclose(x.grad.numpy(), grad(g), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape, kernel, stride, padding", CASES)
def test_avg_pool2d_matches_loop_reference(
    device, rng, shape, kernel, stride, padding, count_include_pad
):
    a = rng.standard_normal(shape)
    x = leaf(a, device)
    out = avg_pool2d(x, kernel, stride, padding, count_include_pad)
    expected, grad = ref_pool(a, kernel, stride, padding, "avg", count_include_pad)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14)
    g = rng.standard_normal(expected.shape)
    out.backward(gg.tensor(g, device=device))
    np.testing.assert_allclose(x.grad.numpy(), grad(g), rtol=1e-12, atol=1e-14)


def test_padding_counts_in_the_average_unless_excluded(device):
    x = gg.ones(1, 1, 2, 2, device=device)
    # The corner window of a 2x2 kernel with padding 1 holds one real 1 and three zeros.
    assert avg_pool2d(x, 2, 1, 1).numpy()[0, 0, 0, 0] == 0.25
    assert avg_pool2d(x, 2, 1, 1, count_include_pad=False).numpy()[0, 0, 0, 0] == 1.0


def test_max_padding_never_wins(device):
    a = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # all negative: a zero pad would win
    out = max_pool2d(gg.tensor(a, device=device), 3, 2, 1).numpy()
    np.testing.assert_array_equal(out, ref_pool(a, 3, 2, 1, "max")[0])
    assert (out < 0).all()


# --- the tie rule: the gradient goes to the first maximum in row-major order -----------------
def test_ties_send_the_gradient_to_the_first_maximum(device):
    a = np.array([[1.0, 2.0, 0.0, 0.0], [2.0, 0.0, 5.0, 5.0], [3.0, 3.0, 4.0, 4.0],
                  [3.0, 3.0, 4.0, 4.0]])[None, None]  # fmt: skip
    x = leaf(a, device)
    max_pool2d(x, 2).sum().backward()
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 2] = expected[2, 0] = expected[2, 2] = 1.0
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)


def test_ties_in_overlapping_windows_of_a_constant(device):
    x = leaf(np.full((1, 1, 4, 5), 7.0), device)
    max_pool2d(x, 3, 1, 1).sum().backward()
    # Each window's first real element (its top-left one inside the input) gets 1.
    _, grad = ref_pool(np.full((1, 1, 4, 5), 7.0), 3, 1, 1, "max")
    expected = grad(np.ones((1, 1, 4, 5)))
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    assert expected[0, 0, 0, 0] == 4  # the corner is first in four windows


def test_ties_on_many_repeated_values_match_the_loop_and_torch(device, rng):
    a = rng.integers(0, 3, size=(2, 3, 7, 6)).astype(np.float64)  # full of ties
    g = rng.standard_normal((2, 3, 4, 3))
    x = leaf(a, device)
    max_pool2d(x, 3, 2, 1).backward(gg.tensor(g, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), ref_pool(a, 3, 2, 1, "max")[1](g))
    torch = pytest.importorskip("torch")
    t = torch.tensor(a, requires_grad=True)
    torch.nn.functional.max_pool2d(t, 3, 2, 1).backward(torch.tensor(g))
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


# --- derivatives ------------------------------------------------------------------------------
DERIVATIVE_CASES = [
    ((1, 2, 5, 5), 3, 2, 1),  # overlapping, padded
    ((2, 1, 4, 5), (2, 3), 1, (1, 0)),  # overlapping, non-square
    ((1, 1, 4, 4), 2, None, 0),  # tiling
    ((2, 4, 3), 2, 1, 1),  # unbatched
]


@pytest.mark.parametrize("shape, kernel, stride, padding", DERIVATIVE_CASES)
def test_max_pool2d_derivatives(device, rng, shape, kernel, stride, padding):
    x = leaf(distinct(rng, shape), device, contiguous=False)
    check(lambda x: max_pool2d(x, kernel, stride, padding), x)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape, kernel, stride, padding", DERIVATIVE_CASES)
def test_avg_pool2d_derivatives(device, rng, shape, kernel, stride, padding, count_include_pad):
    x = leaf(rng.standard_normal(shape), device, contiguous=False)
    check(lambda x: avg_pool2d(x, kernel, stride, padding, count_include_pad), x)


def test_second_derivative_through_a_nonlinearity(device, rng):
    # tanh after pooling makes the second derivative non-zero, so the fold's own gradient is used.
    x = leaf(distinct(rng, (1, 2, 5, 4)), device)
    check(lambda x: max_pool2d(x, 2, 1, 1).tanh(), x)
    check(lambda x: avg_pool2d(x, 3, 1, 1, False).tanh(), x)


def test_unfold_and_fold_are_adjoint_and_differentiable(device, rng):
    # Pooling takes its windows (and folds their gradients back) with conv's Im2Col / Col2Im.
    w = ConvGeometry(in_shape=(1, 2, 4, 5), kernel=(3, 2), stride=(1, 2), dilation=(1, 1),
                     pad_before=(1, 1), pad_after=(1, 1), out=(4, 3))  # fmt: skip
    a, c = rng.standard_normal((1, 2, 4, 5)), rng.standard_normal((1, 2, 3, 2, 4, 3))
    windows = Im2Col.apply(gg.tensor(a, device=device), geo=w).numpy()
    folded = Col2Im.apply(gg.tensor(c, device=device), geo=w).numpy()
    assert windows.shape == c.shape and folded.shape == a.shape
    np.testing.assert_allclose((windows * c).sum(), (folded * a).sum(), rtol=1e-12)
    check(lambda x: Im2Col.apply(x, geo=w).tanh(), leaf(a, device))
    check(lambda v: Col2Im.apply(v, geo=w).tanh(), leaf(c, device))


# --- adaptive average pooling -----------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, size",
    [((2, 3, 7, 5), 1), ((2, 3, 7, 5), (3, 2)), ((1, 2, 6, 4), (3, 2)), ((1, 1, 3, 4), (5, 6)),
     ((2, 5, 4), (None, 3)), ((1, 2, 5, 5), 5)],
)  # fmt: skip
def test_adaptive_avg_pool2d_matches_loop_reference(device, rng, shape, size):
    a = rng.standard_normal(shape)
    x = leaf(a, device)
    out = adaptive_avg_pool2d(x, size)
    oh, ow = (n if s is None else s for s, n in zip(pairs(size), shape[-2:]))
    np.testing.assert_allclose(out.numpy(), ref_adaptive(a, oh, ow), rtol=1e-12, atol=1e-14)
    check(lambda x: adaptive_avg_pool2d(x, size).tanh(), leaf(a[..., :1, :, :], device))


def test_adaptive_avg_pool2d_rejects_an_empty_output(device):
    x = gg.zeros(1, 1, 4, 4, device=device)
    for size in (0, (2, 0), (-1, 1)):
        with pytest.raises(gg.ShapeError, match=r"at least 1x1"):
            adaptive_avg_pool2d(x, size)


# --- 1-D pooling ------------------------------------------------------------------------------
def test_pool1d_is_pool2d_along_the_last_axis(device, rng):
    a = distinct(rng, (2, 3, 9))
    x = gg.tensor(a, device=device)
    for fn, mode in ((max_pool1d, "max"), (avg_pool1d, "avg")):
        expected = ref_pool(a[:, :, None, :], (1, 3), (1, 2), (0, 1), mode)[0][:, :, 0]
        np.testing.assert_allclose(fn(x, 3, 2, 1).numpy(), expected, rtol=1e-12)
    assert avg_pool1d(x[0], 4).shape == (3, 2)
    check(lambda x: max_pool1d(x, 3, 2, 1), leaf(a[:1, :2], device))
    check(lambda x: avg_pool1d(x, 3, 2, 1, count_include_pad=False), leaf(a[:1, :2], device))


# --- against PyTorch --------------------------------------------------------------------------
@pytest.mark.parametrize("shape, kernel, stride, padding", CASES[:5])
def test_matches_torch(device, rng, shape, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    a = rng.standard_normal(shape)
    for ours, theirs in (
        (lambda x: max_pool2d(x, kernel, stride, padding),
         lambda t: tf.max_pool2d(t, kernel, stride, padding)),
        (lambda x: avg_pool2d(x, kernel, stride, padding, count_include_pad=False),
         lambda t: tf.avg_pool2d(t, kernel, stride, padding, count_include_pad=False)),
        (lambda x: adaptive_avg_pool2d(x, (3, 2)), lambda t: tf.adaptive_avg_pool2d(t, (3, 2))),
    ):  # fmt: skip
        x, t = leaf(a, device), torch.tensor(a, requires_grad=True)
        out, expected = ours(x), theirs(t)
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-14)
        g = rng.standard_normal(out.shape)
        out.backward(gg.tensor(g, device=device))
        expected.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_float32_stays_float32(device, rng):
    x = gg.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), device=device)
    for out in (max_pool2d(x, 3, 2, 1), avg_pool2d(x, 2), adaptive_avg_pool2d(x, (4, 5))):
        assert out.dtype == np.float32


# --- modules ----------------------------------------------------------------------------------
def test_modules_call_the_functions_and_show_their_settings(device, rng):
    a = rng.standard_normal((2, 3, 6, 6))
    x = gg.tensor(a, device=device)
    np.testing.assert_array_equal(MaxPool2d(3, 2, 1)(x).numpy(), max_pool2d(x, 3, 2, 1).numpy())
    np.testing.assert_array_equal(
        AvgPool2d(2, count_include_pad=False)(x).numpy(), avg_pool2d(x, 2).numpy()
    )
    assert AdaptiveAvgPool2d((2, 3))(x).shape == (2, 3, 2, 3)
    assert MaxPool1d(2)(x[:, :, 0]).shape == AvgPool1d(2)(x[:, :, 0]).shape == (2, 3, 3)
    assert repr(MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    assert repr(AvgPool2d(3, 1, 1, count_include_pad=False)) == (
        "AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=False)"
    )
    assert repr(AdaptiveAvgPool2d(1)) == "AdaptiveAvgPool2d(output_size=1)"
    assert list(MaxPool2d(2).parameters()) == []


# --- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [max_pool2d, avg_pool2d])
def test_errors_name_the_shapes(device, fn):
    x = gg.zeros(1, 2, 4, 5, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(N, C, H, W\).*\(4, 5\)"):
        fn(x[0, 0], 2)
    with pytest.raises(gg.ShapeError, match=r"\(1, 1, 1, 4, 5\)"):
        fn(gg.zeros(1, 1, 1, 4, 5, device=device), 2)
    with pytest.raises(gg.ShapeError, match=r"larger than the padded input \(6, 7\)"):
        fn(x, (7, 2), padding=1)
    with pytest.raises(gg.ArgumentError, match=r"at most half"):
        fn(x, 3, padding=2)
    with pytest.raises(gg.ArgumentError, match=r"padding must be >= 0, got -1"):
        fn(x, 3, padding=-1)
    for kernel, stride in ((0, 1), ((2, -1), 1), (2, 0)):
        with pytest.raises(gg.ArgumentError, match=r"must be >= 1, got"):
            fn(x, kernel, stride)
    with pytest.raises(gg.DTypeError, match=r"int64"):
        fn(gg.zeros(1, 1, 4, 4, dtype="int64", device=device), 2)


def test_1d_and_adaptive_errors(device):
    with pytest.raises(gg.ShapeError, match=r"\(N, C, L\).*\(1, 2, 3, 4\)"):
        max_pool1d(gg.zeros(1, 2, 3, 4, device=device), 2)
    with pytest.raises(gg.ShapeError, match=r"larger than the padded input \(1, 3\)"):
        avg_pool1d(gg.zeros(1, 2, 3, device=device), 4)
    with pytest.raises(gg.ShapeError, match=r"\(N, C, H, W\).*\(3, 4\)"):
        adaptive_avg_pool2d(gg.zeros(3, 4, device=device), 2)


# --- windows that tile the input (kernel == stride, no padding, divisible sizes) -------------
@pytest.mark.parametrize(
    "shape, kernel, stride, padding, tiled",
    [((2, 3, 6, 6), 2, None, 0, True), ((2, 3, 6, 6), (3, 2), (3, 2), 0, True),
     ((3, 4, 6), 2, None, 0, True), ((2, 3, 7, 6), 2, None, 0, False),
     ((2, 3, 6, 6), 2, 1, 0, False), ((2, 3, 6, 6), 2, None, 1, False)],
)  # fmt: skip
def test_tiling_windows_take_the_tiled_ops(device, rng, shape, kernel, stride, padding, tiled):
    x = leaf(rng.standard_normal(shape), device)
    for fn, name in ((max_pool2d, "MaxPool"), (avg_pool2d, "AvgPool")):
        node = fn(x, kernel, stride, padding)
        node = node.grad_fn if len(shape) == 4 else node.grad_fn.edges[0]  # unbatched: squeeze
        assert type(node).__name__ == ("Tiled" if tiled else "") + name


TILED_CASES = [
    ((2, 3, 6, 6), 2),
    ((2, 2, 6, 4), (3, 2)),
    ((1, 2, 2, 6), (1, 3)),
    ((3, 4, 6), 2),  # unbatched
    ((1, 1, 3, 3), 3),  # one window
]


@pytest.mark.parametrize("shape, kernel", TILED_CASES)
def test_tiled_pooling_matches_the_loop_reference_with_ties(device, rng, shape, kernel):
    a = rng.integers(0, 3, size=shape).astype(np.float64)  # full of ties
    g = rng.standard_normal(max_pool2d(gg.tensor(a), kernel).shape)
    for fn, mode in ((max_pool2d, "max"), (avg_pool2d, "avg")):
        x = leaf(a, device)
        out = fn(x, kernel)
        out.backward(gg.tensor(g, device=device))
        batched = a if a.ndim == 4 else a[None]
        want, grad = ref_pool(batched, kernel, mode=mode)
        want_grad = grad(g if a.ndim == 4 else g[None])
        np.testing.assert_allclose(out.numpy(), want.reshape(out.shape), rtol=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), want_grad.reshape(a.shape), rtol=1e-12)


@pytest.mark.parametrize("shape, kernel", TILED_CASES)
def test_tiled_pooling_matches_torch(device, rng, shape, kernel):
    torch = pytest.importorskip("torch")
    a = rng.integers(0, 3, size=shape).astype(np.float64)  # ties: PyTorch also takes the first
    for ours, theirs in ((max_pool2d, torch.nn.functional.max_pool2d),
                         (avg_pool2d, torch.nn.functional.avg_pool2d)):  # fmt: skip
        x, t = leaf(a, device), torch.tensor(a, requires_grad=True)
        out, expected = ours(x, kernel), theirs(t, kernel)
        g = rng.standard_normal(out.shape)
        out.backward(gg.tensor(g, device=device))
        expected.backward(torch.tensor(g))
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape, kernel", TILED_CASES)
def test_tiled_pooling_derivatives(device, rng, shape, kernel):
    x = leaf(distinct(rng, shape), device, contiguous=False)
    check(lambda x: max_pool2d(x, kernel), x)
    check(lambda x: max_pool2d(x, kernel).tanh(), x)
    check(lambda x: avg_pool2d(x, kernel).tanh(), x)


def test_tiled_max_sends_the_gradient_to_the_first_nan(device):
    # max propagates NaN, and the gradient goes where the maximum came from: the first NaN of
    # its window in row-major order, as in the overlapping (general) path.
    nan = float("nan")
    a = np.array([[1.0, nan, 2.0, 3.0], [nan, 0.0, 5.0, 4.0]])[None, None]
    x = leaf(a, device)
    out = max_pool2d(x, 2)
    out.sum().backward()
    assert np.isnan(out.numpy()[0, 0, 0, 0]) and out.numpy()[0, 0, 0, 1] == 5.0
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[0, 1, 0, 0], [0, 0, 1, 0]])
    general = leaf(np.concatenate([a, a], axis=-2), device)  # overlapping windows: MaxPool
    max_pool2d(general, 2, (2, 1)).backward(gg.ones(1, 1, 2, 3, device=device))
    assert general.grad.numpy()[0, 0, 0, 1] == 2.0  # first NaN of both windows it is in


def test_tiled_max_backward_survives_an_in_place_change_of_its_output(device, rng):
    # The backward compares with its own copy of the maxima, so an in-place change after the
    # pooling (an in-place activation is a common pattern) neither breaks nor changes it.
    a = distinct(rng, (2, 3, 4, 4)) - 2.0
    x, y = leaf(a, device), leaf(a, device)
    (max_pool2d(x, 2) * 3.0).sum().backward()
    out = max_pool2d(y, 2)
    out.mul_(3.0)
    out.sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), x.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, kernel", [((2, 3, 4, 6), 2), ((1, 2, 6, 4), (3, 2)), ((1, 2, 4, 6), (2, 3)),
                      ((1, 1, 2, 8), (1, 2))],
)  # fmt: skip
@pytest.mark.parametrize("sliced", [False, True])
def test_tiled_max_first_maximum_or_nan_in_every_position(
    device, rng, monkeypatch, dtype, shape, kernel, sliced
):
    # Ties and NaN anywhere in the window, float32 as well: the maximum is NaN if the window
    # holds one, and the gradient goes to the first NaN in row-major order, else to the first
    # maximum; the other elements get g·0. Sliced: the backward goes one sample at a time.
    if sliced:
        monkeypatch.setattr(pool_module, "POOL_SLICE_BYTES", 1)
    a = rng.choice(np.array([0.0, 1.0, 2.0, np.nan]), size=shape, p=[0.3, 0.3, 0.3, 0.1])
    kh, kw = pairs(kernel)
    x = gg.tensor(a.astype(dtype), device=device, requires_grad=True)
    out = max_pool2d(x, kernel)
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(gg.tensor(g, device=device))
    want_out, want_grad = np.zeros(out.shape), np.zeros(shape)
    for n, c, i, j in np.ndindex(*out.shape):
        window = a[n, c, i * kh : (i + 1) * kh, j * kw : (j + 1) * kw].ravel()  # row-major
        nans = np.flatnonzero(np.isnan(window))
        first = nans[0] if nans.size else int(np.argmax(window))
        want_out[n, c, i, j] = window[first]
        want_grad[n, c, i * kh + first // kw, j * kw + first % kw] = g[n, c, i, j]
    np.testing.assert_array_equal(out.numpy(), want_out.astype(dtype))
    np.testing.assert_array_equal(x.grad.numpy(), want_grad.astype(dtype))
    assert out.dtype == x.grad.dtype == dtype
