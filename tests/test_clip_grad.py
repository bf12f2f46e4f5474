"""Gradient clipping: clip_grad_norm_ and clip_grad_value_ against NumPy and torch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.nn.utils import NonFiniteNormError, clip_grad_norm_, clip_grad_value_


def params_with_grads(device, rng, dtype="float64", scale=1.0):
    shapes = [(3, 4), (5,), ()]
    params = [gg.zeros(s, dtype=dtype, device=device, requires_grad=True) for s in shapes]
    grads = [scale * rng.standard_normal(s) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = gg.tensor(g, dtype=dtype, device=device)
    return params, grads


def total_norm(grads, p):
    flat = np.concatenate([np.ravel(g) for g in grads])
    if p == math.inf:
        return np.max(np.abs(flat))
    return np.sum(np.abs(flat) ** p) ** (1 / p)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, "inf"])
def test_clip_grad_norm_scales_to_max_norm(norm_type, device, rng):
    params, grads = params_with_grads(device, rng)
    p = float(norm_type)
    expected = total_norm(grads, p)
    max_norm = expected / 3
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    assert isinstance(total, gg.Tensor) and total.shape == () and total.device == params[0].device
    assert total.item() == pytest.approx(expected, rel=1e-12)
    coef = max_norm / (expected + 1e-6)
    for param, g in zip(params, grads):
        np.testing.assert_allclose(param.grad.numpy(), g * coef, rtol=1e-12)
    clipped = [param.grad.numpy() for param in params]
    assert total_norm(clipped, p) == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients_alone(device, rng):
    params, grads = params_with_grads(device, rng, dtype="float32")
    expected = total_norm(grads, 2.0)
    total = clip_grad_norm_(params, max_norm=expected * 2)
    assert total.dtype == np.float32
    assert total.item() == pytest.approx(expected, rel=1e-5)
    for param, g in zip(params, grads):
        np.testing.assert_array_equal(param.grad.numpy(), g.astype(np.float32))


def test_clip_grad_norm_skips_missing_grads_and_takes_one_tensor(device, rng):
    params, grads = params_with_grads(device, rng)
    extra = gg.ones(2, device=device, requires_grad=True)
    total = clip_grad_norm_([*params, extra], max_norm=1.0)
    assert total.item() == pytest.approx(total_norm(grads, 2.0), rel=1e-12)
    assert extra.grad is None
    single = gg.zeros(1, 2, dtype="float64", device=device, requires_grad=True)
    single.grad = gg.tensor([[3.0, 4.0]], dtype="float64", device=device)
    assert clip_grad_norm_(single, max_norm=1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(single.grad.numpy(), [[0.6, 0.8]], rtol=1e-6)
    assert clip_grad_norm_([extra], max_norm=1.0).item() == 0.0


def test_clip_grad_norm_nonfinite(device):
    p = gg.zeros(2, dtype="float64", device=device, requires_grad=True)
    p.grad = gg.tensor([1.0, float("nan")], dtype="float64", device=device)
    with pytest.raises(NonFiniteNormError):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert math.isnan(clip_grad_norm_([p], 1.0).item())


def test_clip_grad_norm_matches_torch(device, rng):
    torch = pytest.importorskip("torch")
    for norm_type in (2.0, 1.5, math.inf):
        params, grads = params_with_grads(device, rng, scale=3.0)
        tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for t, g in zip(tparams, grads):
            t.grad = torch.tensor(g)
        ours = clip_grad_norm_(params, 2.0, norm_type).item()
        theirs = torch.nn.utils.clip_grad_norm_(tparams, 2.0, norm_type).item()
        assert ours == pytest.approx(theirs, rel=1e-12)
        for p, t in zip(params, tparams):
            np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_clip_grad_value(device, rng):
    params, grads = params_with_grads(device, rng, scale=2.0)
    before = [p.grad for p in params]
    clip_grad_value_(params, 0.5)
    for p, b, g in zip(params, before, grads):
        assert p.grad is b  # in place
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -0.5, 0.5))
    torch = pytest.importorskip("torch")
    t = torch.tensor(grads[0])
    w = torch.zeros(t.shape, dtype=torch.float64, requires_grad=True)
    w.grad = t.clone()
    torch.nn.utils.clip_grad_value_([w], 0.5)
    np.testing.assert_array_equal(params[0].grad.numpy(), w.grad.numpy())
