"""The NumPy twin of the fused softmax cross-entropy against a plain NumPy formula."""

from __future__ import annotations

import numpy as np
import pytest

from gpugrad.backend import get_backend


def _reference(logits, labels, g, ignore_index, smoothing):
    """(loss, gradient) in float64 from the textbook formulas."""
    x = logits.astype(np.float64)
    rows, classes = x.shape
    log_p = x - x.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    valid = labels != ignore_index
    target = np.zeros_like(x)
    target[np.arange(rows), np.where(valid, labels, 0)] = 1.0
    target = target * (1 - smoothing) + smoothing / classes
    loss = np.where(valid, -(target * log_p).sum(axis=1), 0.0)
    grad = (np.exp(log_p) - target) * np.where(valid, g, 0.0)[:, None]
    return loss, grad


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize(("dtype", "g_dtype"), [("float32", "float32"), ("float32", "float64")])
@pytest.mark.parametrize("into", [False, True])
def test_twin_matches_the_formula(smoothing, dtype, g_dtype, into):
    cpu = get_backend("cpu")
    rng = np.random.default_rng(5)
    logits = (rng.standard_normal((9, 7)) * 4).astype(dtype)
    labels = rng.integers(0, 7, 9)
    labels[[2, 5]] = -100
    g = rng.standard_normal(9).astype(g_dtype)
    loss_ref, grad_ref = _reference(logits, labels, g, -100, smoothing)
    out = np.empty((9, 7), np.result_type(dtype, g_dtype)) if into else None
    loss = cpu.softmax_cross_entropy_forward(logits, labels, -100, smoothing)
    grad = cpu.softmax_cross_entropy_backward(g, logits, labels, -100, smoothing, into=out)
    assert grad.dtype == np.result_type(dtype, g_dtype)
    if into:
        assert grad is out
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-5, atol=1e-6)
    assert not grad[[2, 5]].any()
