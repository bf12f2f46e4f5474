"""Linear + activation as one node (gpugrad/nn/fusion.py): the same values and first and second
derivatives as Linear followed by the activation, and Sequential fuses only where it should;
ReLU + max pooling, run as pooling then ReLU, gives the same values and gradients.

The fused Function runs on every backend, and Sequential uses it on the CPU and CUDA backends
alike (not on stock CuPy); most tests here call it directly.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
from gpugrad import nn
from gpugrad.nn.fusion import FUSABLE, LinearActivation, forward_fused, linear_activation

MODULES = [nn.ReLU(), nn.Sigmoid(), nn.Tanh()]
IDS = [type(m).__name__ for m in MODULES]


def _weights(rng, device, in_features=3, out_features=4):
    w = leaf(rng.standard_normal((out_features, in_features)), device)
    b = leaf(rng.standard_normal(out_features), device)
    return w, b


@pytest.mark.parametrize("module", MODULES, ids=IDS)
@pytest.mark.parametrize("shape", [(5, 3), (3,), (2, 1, 3)])
def test_fused_equals_linear_then_activation(device, rng, module, shape):
    x = leaf(rng.standard_normal(shape) * 2, device)
    w, b = _weights(rng, device)
    fused = linear_activation(x, w, b, FUSABLE[type(module)])
    plain = module(nn.functional.linear(x, w, b))
    np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-12, atol=1e-14)
    assert fused.shape == plain.shape and type(fused.grad_fn) is LinearActivation
    g = rng.standard_normal(plain.shape)
    grads = gg.grad([fused], [x, w, b], [gg.tensor(g, device=device)])
    ref = gg.grad([plain], [x, w, b], [gg.tensor(g, device=device)])
    for got, want in zip(grads, ref):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("module", MODULES, ids=IDS)
def test_fused_gradients_against_finite_differences(device, rng, module):
    kind = FUSABLE[type(module)]
    x = leaf(rng.standard_normal((4, 3)), device)
    w, b = _weights(rng, device)
    check(lambda x, w, b: linear_activation(x, w, b, kind), x, w, b)


def test_changing_the_fused_output_in_place_is_caught(device, rng):
    x = leaf(rng.standard_normal((2, 3)), device)
    w, b = _weights(rng, device)
    y = linear_activation(x, w, b, "relu")  # relu's backward reads the output
    y.mul_(2)
    with pytest.raises(gg.InplaceError):
        y.sum().backward()


def test_fused_checks_shapes_and_kind(rng):
    w, b = _weights(rng, "cpu")
    with pytest.raises(gg.ShapeError, match="in_features=3"):
        linear_activation(gg.ones(2, 5, dtype=gg.float64), w, b, "relu")
    with pytest.raises(ValueError, match="kind must be one of"):
        linear_activation(gg.ones(2, 3, dtype=gg.float64), w, b, "gelu")


def _model():
    return nn.Sequential(
        nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Dropout(0.0), nn.Tanh(), nn.Linear(4, 2)
    )


def test_forward_fused_pairs_only_linear_and_activation(rng):
    model = _model()
    x = gg.tensor(rng.standard_normal((5, 3)), dtype=gg.float32)
    out = forward_fused(list(model), x)
    np.testing.assert_allclose(out.numpy(), model(x).numpy(), rtol=1e-6)
    # Linear→ReLU fused; Linear→Dropout→Tanh and the last Linear are not pairs.
    names, node = [], out.grad_fn
    while node is not None:
        names.append(type(node).__name__)
        node = next((e for e in node.edges if e is not None and not isinstance(e, gg.Tensor)), None)
    assert names.count("LinearActivation") == 1


def test_hooks_and_subclasses_are_never_fused(rng):
    model = _model()
    x = gg.tensor(rng.standard_normal((5, 3)), dtype=gg.float32)
    seen = []
    handle = model[1].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    out = forward_fused(list(model), x)
    assert seen == [(5, 4)]  # the hook ran: ReLU was called as a module
    handle.remove()

    class MyReLU(nn.ReLU):
        def forward(self, x):
            return super().forward(x) * 2

    model[1] = MyReLU()
    out = forward_fused(list(model), x)
    np.testing.assert_allclose(out.numpy(), model(x).numpy(), rtol=1e-6)

    relu = nn.ReLU()
    relu.forward = lambda x: x.relu() * 3  # a forward set on the instance
    model[1] = relu
    out = forward_fused(list(model), x)
    np.testing.assert_allclose(out.numpy(), model(x).numpy(), rtol=1e-6)


def test_sequential_fuses_on_the_cpu_backend_as_on_cuda(rng):
    model = _model()
    x = gg.tensor(rng.standard_normal((5, 3)), dtype=gg.float32)
    out = model(x)
    node = out.grad_fn
    kinds = set()
    while node is not None:
        kinds.add(type(node).__name__)
        node = next((e for e in node.edges if e is not None and not isinstance(e, gg.Tensor)), None)
    assert "LinearActivation" in kinds
    # The same values and gradients as calling the modules one by one.
    out.sum().backward()
    fused = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    unfused = x
    for module in model:
        unfused = module(unfused)
    np.testing.assert_allclose(out.numpy(), unfused.numpy(), rtol=1e-6)
    unfused.sum().backward()
    for got, p in zip(fused, model.parameters()):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1), nn.MaxPool1d(2)])
@pytest.mark.parametrize("grad", ["finite", "inf", "nan"])
def test_relu_then_max_pool_runs_as_pool_then_relu_with_the_same_results(device, rng, pool, grad):
    # Ties (many zeros, equal values), negative-only windows, NaN inputs, -0.0, and a
    # non-finite g: values and gradients bit for bit as ReLU then pooling, module by module.
    shape = (2, 3, 6, 6) if isinstance(pool, nn.MaxPool2d) else (2, 3, 8)
    a = rng.choice(np.array([-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, np.nan]), size=shape)
    a[0, 0] = -np.abs(a[0, 0])  # a channel with no positive value
    model = nn.Sequential(nn.ReLU(), pool)
    x, y = leaf(a, device), leaf(a, device)
    out = model(x)
    tiled = pool.padding == 0 and pool.kernel_size == pool.stride
    # Only pooling whose windows tile the input runs first (its backward multiplies by the
    # mask as ReLU's does; the general one selects, which differs for a non-finite g).
    assert type(out.grad_fn).__name__ == ("Relu" if tiled else "MaxPool")
    plain = pool(nn.ReLU()(y))
    g = rng.standard_normal(out.shape)
    g.flat[::5] = {"finite": 1.5, "inf": np.inf, "nan": np.nan}[grad]
    with np.errstate(invalid="ignore"):  # inf·0 on the host
        out.backward(gg.tensor(g, device=device))
        plain.backward(gg.tensor(g, device=device))
    np.testing.assert_array_equal(out.numpy(), plain.numpy())
    np.testing.assert_array_equal(x.grad.numpy(), y.grad.numpy())


def test_relu_then_overlapping_max_pool_keeps_its_order_for_a_non_finite_gradient(device):
    # A window whose maximum is not positive: ReLU ties all of it at 0, so ReLU then pooling
    # sends g to its first element, and pooling then ReLU to the raw first maximum; with an
    # infinite g the NaN (inf·0) lands on different elements. Overlapping windows (stride 1)
    # take the general pooling, so Sequential keeps the written order.
    pool = nn.MaxPool2d((1, 2), stride=1)
    a = np.array([-3.0, -1.0, 2.0]).reshape(1, 1, 1, 3)
    x, y = leaf(a, device), leaf(a, device)
    out = nn.Sequential(nn.ReLU(), pool)(x)
    plain = pool(nn.ReLU()(y))
    g = gg.tensor(np.full((1, 1, 1, 2), np.inf), device=device)
    with np.errstate(invalid="ignore"):
        out.backward(g)
        plain.backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), y.grad.numpy())
