"""Hooks (tensor, module forward, module backward) and anomaly detection."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn


def leaf(values, device):
    return gg.tensor(values, dtype="float64", device=device, requires_grad=True)


# --- tensor hooks -----------------------------------------------------------------------------
def test_leaf_hook_sees_and_replaces_the_gradient_before_it_is_stored(device):
    x = leaf([1.0, 2.0], device)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    np.testing.assert_allclose(seen[0], [2.0, 4.0])
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 40.0])


def test_non_leaf_hook_changes_what_flows_on(device):
    x = leaf([1.0, 2.0], device)
    y = x * 3
    y.register_hook(lambda g: g + 1)  # dL/dy becomes 2 instead of 1
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_hooks_run_in_order_and_are_removed_by_their_handles(device):
    x = leaf([1.0], device)
    order = []
    first = x.register_hook(lambda g: order.append("first"))
    x.register_hook(lambda g: order.append("second"))
    (x * 2).sum().backward()
    assert order == ["first", "second"]
    first.remove()
    first.remove()  # harmless twice
    order.clear()
    (x * 2).sum().backward()
    assert order == ["second"]


def test_hooks_apply_to_grad_and_to_create_graph(device):
    x = leaf([3.0], device)
    x.register_hook(lambda g: g * 2)
    (g,) = gg.grad((x**3).sum(), x, create_graph=True)  # 2 · 3x² = 54
    np.testing.assert_allclose(g.numpy(), [54.0])
    assert x.grad is None
    (h,) = gg.grad(g.sum(), x)  # the hook runs again: 2 · (2 · 6x) = 72
    np.testing.assert_allclose(h.numpy(), [72.0])


def test_bad_hooks_raise(device):
    x = leaf([1.0, 2.0], device)
    x.register_hook(lambda g: g[:1])
    with pytest.raises(gg.ShapeError, match="shape"):
        (x * 1).sum().backward()
    with pytest.raises(gg.GraphError, match="does not require grad"):
        gg.ones(2, device=device).register_hook(lambda g: g)
    with pytest.raises(TypeError, match="callable"):
        leaf([1.0], device).register_hook(3)


# --- module hooks -----------------------------------------------------------------------------
def test_forward_hooks_see_and_replace(device):
    lin = nn.Linear(3, 2).to(device)
    calls = []
    lin.register_forward_pre_hook(lambda m, args: calls.append(("pre", args[0].shape)))
    handle = lin.register_forward_hook(lambda m, args, out: out * 0)
    x = gg.randn(4, 3, device=device)
    assert float(lin(x).abs().sum()) == 0.0
    assert calls == [("pre", (4, 3))]
    handle.remove()
    assert float(lin(x).abs().sum()) > 0.0


def test_full_backward_hook_gets_and_replaces_grad_input(device):
    gg.manual_seed(0)
    lin = nn.Linear(3, 2).to(device).double()
    seen = []

    def hook(module, grad_input, grad_output):
        seen.append((module, grad_input[0].shape, grad_output[0].shape))
        return (grad_input[0] * 2,)

    lin.register_full_backward_hook(hook)
    x = leaf(np.ones((4, 3)), device)
    lin(x).sum().backward()
    assert seen == [(lin, (4, 3), (4, 2))]
    expected = 2 * np.ones((4, 2)) @ lin.weight.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), expected)
    assert lin.weight.grad is not None  # the parameters' gradients are untouched


def test_full_backward_hook_without_an_input_gradient(device):
    lin = nn.Linear(3, 2).to(device)
    seen = []
    lin.register_full_backward_hook(lambda m, gi, go: seen.append((gi[0], go[0].shape)))
    lin(gg.ones(4, 3, device=device)).sum().backward()
    assert seen == [(None, (4, 2))]


def test_full_backward_hook_needs_one_tensor_in_and_out(device):
    class Pair(nn.Module):
        def forward(self, a, b):
            return a + b

    pair = Pair()
    pair.register_full_backward_hook(lambda m, gi, go: None)
    with pytest.raises(gg.GraphError, match="one"):
        pair(leaf([1.0], device), leaf([2.0], device))


# --- anomaly detection ------------------------------------------------------------------------
def test_detect_anomaly_names_the_op_and_the_line(device):
    with gg.detect_anomaly():
        assert gg.is_anomaly_enabled()
        z = leaf([0.0, 1.0], device)
        with np.errstate(all="ignore"):
            w = gg.log(z)  # the line the error must point at
        with np.errstate(all="ignore"), pytest.raises(gg.AnomalyError) as info:
            (w * 0).sum().backward()
    message = str(info.value)
    assert "Log" in message and "NaN or inf" in message
    assert "test_hooks.py" in message and "w = gg.log(z)" in message
    assert not gg.is_anomaly_enabled()


def test_anomaly_detection_is_off_by_default(device):
    z = leaf([0.0, 1.0], device)
    with np.errstate(all="ignore"):
        w = gg.log(z)
        assert w.grad_fn.trace is None  # no stack captured
        (w * 0).sum().backward()  # NaN gradients pass silently, as in PyTorch
    assert np.isnan(z.grad.numpy()).any()


def test_a_hook_that_refers_to_its_tensor_does_not_keep_it_alive(device):
    import gc
    import weakref

    def make():
        t = leaf([1.0, 2.0], device)
        t.register_hook(lambda g: g * 2 if t is not None else g)
        return weakref.ref(t)

    ref = make()
    gc.collect()
    assert ref() is None
