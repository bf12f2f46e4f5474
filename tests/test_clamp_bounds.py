"""The gradient of clamp/clip exactly at a bound, pinned: 1 at min and at max (the value passes
through there), as PyTorch 2.13 gives; PyTorch 2.14 gives 0, so this is a choice, kept here."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg

BOUNDS = [(-0.5, 0.5), (-0.5, None), (None, 0.5), (0.0, 0.0)]


@pytest.mark.parametrize("low, high", BOUNDS, ids=str)
@pytest.mark.parametrize("spelling", ["clamp", "clip"])
def test_gradient_is_one_exactly_at_each_bound(low, high, spelling, device):
    values = [-1.0, -0.5, 0.0, 0.5, 1.0]
    x = gg.tensor(values, dtype=gg.float64, device=device, requires_grad=True)
    getattr(gg, spelling)(x, low, high).sum().backward()
    lo = -np.inf if low is None else low
    hi = np.inf if high is None else high
    expected = [1.0 if lo <= v <= hi else 0.0 for v in values]
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_the_rule_matches_the_pinned_torch_version():
    torch = pytest.importorskip("torch")
    if not torch.__version__.startswith("2.13"):
        pytest.skip("the bound rule changed in PyTorch 2.14; pinned against 2.13")
    x = torch.tensor([-0.5, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    x.clamp(-0.5, 0.5).sum().backward()
    ours = gg.tensor([-0.5, 0.0, 0.5], dtype=gg.float64, requires_grad=True)
    ours.clamp(-0.5, 0.5).sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), x.grad.numpy())
