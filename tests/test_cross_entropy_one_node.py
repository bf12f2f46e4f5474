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
