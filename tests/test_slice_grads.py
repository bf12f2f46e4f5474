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
    a = SliceGrad(backend, (4,), [(slice(0, 2), np.array([1.0, 2.0]))])
    b = SliceGrad(backend, (4,), [(slice(1, 3), np.array([10.0, 20.0]))])
    dense = np.array([100.0, 200.0, 300.0, 400.0])
    np.testing.assert_array_equal((a + b).dense(), [1, 12, 20, 0])
    np.testing.assert_array_equal((dense + a).dense(), [101, 202, 300, 400])
    np.testing.assert_array_equal((a + dense).dense(), [101, 202, 300, 400])
    assert dense.tolist() == [100, 200, 300, 400]  # the base is copied, never written
    np.testing.assert_array_equal(((dense + a) + (dense + b)).dense(), [201, 412, 620, 800])
    half = SliceGrad(backend, (4,), [(slice(0, 1), np.array([1.0], dtype=np.float32))])
    np.testing.assert_array_equal(a + half, [2, 2, 0, 0])  # dtypes differ: dense arithmetic
