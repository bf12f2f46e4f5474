"""Gradients of basic indexing travel through backward as autograd.SliceGrad (the zeros are
written once, when a node needs the array). Nothing outside the engine may ever see one: these
tests compare the results with the dense arithmetic and look at what hooks, retained grads,
captured grads and anomaly checks receive."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import SliceGrad


def _dense_reference(x: np.ndarray, pieces, weights) -> np.ndarray:
    grad = np.zeros_like(x)
    for index, w in zip(pieces, weights):
        grad[index] += w
    return grad


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_overlapping_slices_of_an_intermediate_add_up(device, rng, dtype) -> None:
    x = gg.tensor(rng.standard_normal((5, 6)).astype(dtype), device=device, requires_grad=True)
    h = x * 2  # an intermediate: its gradient is gathered from the slices below
    pieces = [(slice(0, 3),), (slice(2, 5), slice(1, 4)), (1, slice(None)), (Ellipsis, 5)]
    weights = [rng.standard_normal(np.zeros((5, 6))[p].shape).astype(dtype) for p in pieces]
    total = sum((h[p] * gg.tensor(w, device=device)).sum() for p, w in zip(pieces, weights))
    total = total + (h * 3).sum()  # a dense gradient joins the slices
    total.backward()
    expected = 2 * (_dense_reference(np.zeros((5, 6), dtype), pieces, weights) + 3)
    tolerance = 2e-2 if dtype == "float16" else 1e-6
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=tolerance, atol=tolerance)
    assert x.grad.dtype == dtype


def test_split_pieces_gradient_matches_concatenation(device, rng) -> None:
    x = gg.tensor(rng.standard_normal((2, 3, 12)), device=device, requires_grad=True)
    h = x.exp()
    q, k, v = h.split(4, axis=2)
    (q * 1.0 + k * 2.0 + v * 3.0).sum().backward()
    scale = np.concatenate([np.full(4, 1.0), np.full(4, 2.0), np.full(4, 3.0)])
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.numpy()) * scale, rtol=1e-12)


@pytest.mark.parametrize(
    "pieces",
    [
        # Tiling one axis, in any order: joined, no zeros.
        [(slice(None), slice(None), slice(8, 12)), (slice(None), slice(None), slice(0, 8))],
        [(slice(1, 2),), (slice(0, 1),)],
        [(slice(None), slice(0, 3)), (slice(None), slice(3, 2 + 1))],
        # Not a tiling: a gap, a doubled span, two axes, a step, an integer index.
        [(slice(None), slice(None), slice(0, 5)), (slice(None), slice(None), slice(6, 12))],
        [(slice(0, 1),), (slice(0, 1),), (slice(1, 2),)],
        [(slice(0, 1), slice(0, 1)), (slice(1, 2), slice(1, 3))],
        [(slice(None), slice(None), slice(0, 12, 2)), (slice(None), slice(None), slice(1, 12, 2))],
        [(0,), (1,)],
    ],
)
def test_pieces_that_tile_an_axis_or_not_add_up_as_dense_arrays(device, rng, pieces) -> None:
    x = gg.tensor(rng.standard_normal((2, 3, 12)), device=device, requires_grad=True)
    h = x * 2
    weights = [rng.standard_normal(np.zeros((2, 3, 12))[p].shape) for p in pieces]
    sum((h[p] * gg.tensor(w, device=device)).sum() for p, w in zip(pieces, weights)).backward()
    expected = 2 * _dense_reference(np.zeros((2, 3, 12)), pieces, weights)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_hooks_retained_and_captured_grads_are_arrays(rng) -> None:
    x = gg.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    h = x * 1.5
    h.retain_grad()
    seen = []
    h.register_hook(lambda g: seen.append(type(g.data if isinstance(g, gg.Tensor) else g)))
    (h[0:2].sum() + h[3].sum() * 2).backward()
    assert seen and all(t is not SliceGrad for t in seen)
    assert isinstance(h.grad, gg.Tensor) and not isinstance(h.grad.data, SliceGrad)
    np.testing.assert_allclose(h.grad.numpy(), [[1, 1, 1], [1, 1, 1], [0, 0, 0], [2, 2, 2]])
    h2 = x * 1.5
    (grad,) = gg.grad(h2[1:3].sum(), [h2])
    assert isinstance(grad, gg.Tensor) and not isinstance(grad.data, SliceGrad)
    np.testing.assert_allclose(grad.numpy(), [[0, 0, 0], [1, 1, 1], [1, 1, 1], [0, 0, 0]])


def test_anomaly_mode_checks_slice_gradients(rng) -> None:
    x = gg.tensor(rng.standard_normal(4), requires_grad=True)
    with gg.autograd.detect_anomaly():  # the check reads each node's gradients as arrays
        h = x * 2
        (h[1:3] * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 6, 6, 0])
    with pytest.raises(gg.errors.AnomalyError), gg.autograd.detect_anomaly():
        h = x * 2
        (h[1:3] * gg.tensor(np.array([1.0, np.inf]))).sum().backward()


def test_second_derivatives_through_slices(rng) -> None:
    x = gg.tensor(rng.standard_normal(5), requires_grad=True)
    h = x * x
    (gx,) = gg.grad((h[1:4] ** 2).sum(), [x], create_graph=True)
    np.testing.assert_allclose(gx.numpy(), np.r_[0, 4 * x.numpy()[1:4] ** 3, 0], rtol=1e-12)
    (gxx,) = gg.grad(gx.sum(), [x])
    np.testing.assert_allclose(gxx.numpy(), np.r_[0, 12 * x.numpy()[1:4] ** 2, 0], rtol=1e-12)


def test_slice_gradient_arithmetic() -> None:
    backend = gg.backend.get_backend("cpu")

    def piece(index, values, dtype="float64"):
        return SliceGrad(backend, (4,), index, np.array(values, dtype=dtype))

    np.testing.assert_array_equal(
        (piece(slice(0, 2), [1, 2]) + piece(slice(1, 3), [10, 20])).dense(), [1, 12, 20, 0]
    )
    dense = np.array([100.0, 200.0, 300.0, 400.0])
    np.testing.assert_array_equal(dense + piece(slice(0, 2), [1, 2]), [101, 202, 300, 400])
    np.testing.assert_array_equal(piece(slice(0, 2), [1, 2]) + dense, [101, 202, 300, 400])
    assert dense.tolist() == [100, 200, 300, 400]  # never written
    half = piece(slice(0, 1), [1], dtype="float32")
    mixed = piece(slice(0, 2), [1, 2]) + half  # dtypes differ: dense arithmetic, promoted
    np.testing.assert_array_equal(mixed, [2, 2, 0, 0])
    assert mixed.dtype == np.float64


def test_a_piece_is_copied_when_made_so_later_edits_do_not_reach_it() -> None:
    backend = gg.backend.get_backend("cpu")
    values = np.array([1.0, 2.0])
    lazy = SliceGrad(backend, (4,), slice(0, 2), values)
    values *= 100  # as an in-place accumulation into a leaf's .grad sharing this array
    np.testing.assert_array_equal(lazy.dense(), [1, 2, 0, 0])


def test_pieces_fold_into_one_buffer_once_they_cover_the_array() -> None:
    backend = gg.backend.get_backend("cpu")
    total = SliceGrad(backend, (8,), slice(0, 4), np.ones(4))
    for start in range(1, 5):  # overlapping windows: 4 more pieces of 4
        total = total + SliceGrad(backend, (8,), slice(start, start + 4), np.ones(4))
        assert len(total.pieces) * 4 < 8 + 4  # folded whenever they reach the array's size
    np.testing.assert_array_equal(total.dense(), [1, 2, 3, 4, 4, 3, 2, 1])


def test_zero_d_intermediates_and_explain_see_arrays(rng) -> None:
    x = gg.tensor(3.0, requires_grad=True)
    h = x * 2
    (h[...].sum() + h * 3 + h[None].sum() + h[()]).backward()
    assert x.grad.item() == 12.0
    from gpugrad.explain import explain

    y = gg.tensor(rng.standard_normal(4), requires_grad=True)
    text = explain((y * 2)[1:3].sum())  # walks backward calling each node itself
    assert "GetItem" in str(text)
