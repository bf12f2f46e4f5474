"""cross_entropy with class labels and reduction "mean" or "sum" is one node: the fused
softmax cross-entropy sums (and averages over the rows not ignored) in the same Function.
Its derivatives are gradchecked in float64 and its values compared with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.ops.loss import SoftmaxCrossEntropy

CASES = [
    ((5, 4), [0, 3, 1, 1, 2]),
    ((3, 1), [0, 0, 0]),
    ((1, 6), [5]),
    ((4, 3), [2, -100, 0, -100]),  # ignored rows add nothing and are not counted
]


@pytest.mark.parametrize("shape, labels", CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_total_is_one_node_with_right_derivatives(device, rng, shape, labels, reduction,
                                                  smoothing):  # fmt: skip
    x = leaf(rng.standard_normal(shape) * 2, device)
    y = gg.tensor(labels, device=device)

    def loss(x):
        return F.cross_entropy(x, y, reduction=reduction, label_smoothing=smoothing)

    out = loss(x)
    assert out.shape == () and isinstance(out.grad_fn, SoftmaxCrossEntropy)
    assert out.grad_fn.edges[0] is x  # straight to the logits: no sum or division node
    check(loss, x)
    check(lambda x: loss(x.tanh() * 3), x)


def test_mean_with_every_row_ignored_is_nan_as_pytorch(device):
    x = gg.zeros(2, 3, device=device, requires_grad=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = F.cross_entropy(x, gg.tensor([-100, -100], device=device))
    assert np.isnan(out.item())


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_total_matches_torch(rng, reduction, dtype, tol):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((32, 10)) * 3).astype(dtype)
    labels = rng.integers(0, 10, 32)
    labels[[3, 7]] = -100
    ours = gg.tensor(x, requires_grad=True)
    out = F.cross_entropy(ours, gg.tensor(labels), reduction=reduction, label_smoothing=0.1)
    out.backward()
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(
        theirs, torch.from_numpy(labels), reduction=reduction, label_smoothing=0.1
    )
    expected.backward()
    np.testing.assert_allclose(out.item(), expected.item(), rtol=tol)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=tol, atol=tol)


# --- no label is ignore_index: the primitives skip their masking ----------------------------
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_primitives_without_ignored_rows_match_the_masked_ones(device, rng, smoothing):
    """ignore_index=None (what cross_entropy passes once the labels' bounds show none can be
    ignore_index) gives the bits of the masked primitives for labels that are all kept."""
    backend = gg.tensor([0.0], device=device)._backend
    xp = backend.xp
    logits = xp.asarray(rng.standard_normal((6, 5)).astype(np.float32) * 3)
    labels = xp.asarray(np.array([0, 4, 2, 2, 1, 3]))
    forward = backend.softmax_cross_entropy_forward
    backward = backend.softmax_cross_entropy_backward
    same = backend.to_numpy
    np.testing.assert_array_equal(
        same(forward(logits, labels, None, smoothing)),
        same(forward(logits, labels, -100, smoothing)),
    )
    for g in (xp.asarray(rng.standard_normal(6).astype(np.float32)), xp.asarray(np.float32(0.25))):
        np.testing.assert_array_equal(
            same(backward(g, logits, labels, None, smoothing)),
            same(backward(g, logits, labels, -100, smoothing)),
        )


@pytest.mark.parametrize(
    "labels, ignore_index",
    [
        ([0, 3, 1, 1, 2], -100),  # below every label: no row can be ignored
        ([0, 3, 1, 1, 2], 1),  # a class that occurs: its rows are ignored
        ([0, 3, 0, 3, 0], 2),  # inside the labels' range but absent: nothing to ignore
        ([0, 3, 1, 1, 2], 9),  # above every label
    ],
)
def test_ignore_index_anywhere_against_the_loop(device, rng, labels, ignore_index):
    """The mean loss and its gradient, against a row-by-row NumPy loop, whichever side of the
    labels' bounds ignore_index lies."""
    x = rng.standard_normal((5, 4))
    t = leaf(x, device)
    out = F.cross_entropy(t, gg.tensor(labels, device=device), ignore_index=ignore_index)
    out.backward()
    kept = [i for i, y in enumerate(labels) if y != ignore_index]
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = -np.mean([np.log(p[i, labels[i]]) for i in kept])
    grad = np.zeros_like(x)
    for i in kept:
        grad[i] = p[i]
        grad[i, labels[i]] -= 1
    grad /= len(kept)
    np.testing.assert_allclose(out.item(), expected, rtol=1e-12)
    np.testing.assert_allclose(t.grad.numpy(), grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8"])
def test_value_bounds_generic_and_numpy_agree(device, dtype):
    """The backend's labels bounds (one device read on a GPU): the generic form, run here on
    this device's arrays too, and the backend's own give the same Python ints."""
    from gpugrad.backend.base import Backend

    backend = gg.tensor([0.0], device=device)._backend
    values = backend.xp.asarray(np.array([7, 3, 250, 3, 0], dtype=dtype))
    assert backend.value_bounds(values) == (0, 250)
    assert Backend.value_bounds(backend, values) == (0, 250)
    assert all(type(v) is int for v in backend.value_bounds(values))


@pytest.mark.parametrize("ignored", [False, True])
def test_float16_mean_over_more_rows_than_float16_can_count(device, ignored):
    """70,000 rows of logits 0 (loss log 2 each): the mean is log 2 and each logit's gradient
    ±0.5/rows, with the sum and the count in float32; in float16 both would be inf past 65504
    (a loss of 0 and zero gradients)."""
    rows = 70_000
    x = gg.tensor(np.zeros((rows, 2), np.float16), device=device, requires_grad=True)
    labels = np.zeros(rows, np.int64)
    if ignored:
        labels[:10] = -100  # the counted path: labels can be ignore_index
    out = F.cross_entropy(x, gg.tensor(labels, device=device))
    out.backward()
    kept = rows - 10 if ignored else rows
    assert out.dtype == np.float16
    np.testing.assert_allclose(float(out.item()), np.log(2), rtol=1e-3)
    grad = x.grad.numpy().astype(np.float64)
    np.testing.assert_allclose(grad[-1], [-0.5 / kept, 0.5 / kept], rtol=1e-2)
    if ignored:
        assert not grad[:10].any()
