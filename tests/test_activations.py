"""Activations: values against NumPy formulas, first and second derivatives, stability at
±1e4, dtypes, the fused primitives on their own, and the routes backward takes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.backend import get_backend, special_math
from gpugrad.backend.activation_math import ActivationPrimitives
from gpugrad.nn.activation import (
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)  # fmt: skip

_erf = np.vectorize(math.erf)


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


# name -> (gpugrad function, NumPy reference, module); inputs stay in moderate ranges here.
CASES = {
    "relu": (F.relu, lambda x: np.maximum(x, 0), ReLU()),
    "leaky_relu": (
        lambda t: F.leaky_relu(t, 0.2),
        lambda x: np.where(x > 0, x, 0.2 * x),
        LeakyReLU(0.2),
    ),
    "elu": (lambda t: F.elu(t, 1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x)), ELU(1.5)),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), GELU()),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), _np_gelu_tanh, GELU("tanh")),
    "silu": (F.silu, lambda x: x * _np_sigmoid(x), SiLU()),
    "sigmoid": (F.sigmoid, _np_sigmoid, Sigmoid()),
    "tanh": (F.tanh, np.tanh, Tanh()),
    "softplus": (
        lambda t: F.softplus(t, beta=2.0, threshold=3.0),
        lambda x: np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2),
        Softplus(2.0, 3.0),
    ),
    "softmax": (lambda t: F.softmax(t, axis=0), lambda x: _np_softmax(x, 0), Softmax(0)),
    "log_softmax": (
        F.log_softmax,
        lambda x: np.log(_np_softmax(x, -1)),
        LogSoftmax(),
    ),
}


def _inputs(rng, shape=(3, 4)):
    # Keep clear of the kinks at 0 (relu, leaky_relu, elu) and of softplus's threshold
    # (βx = 3 at x = 1.5), where finite differences straddle two formulas.
    x = rng.uniform(0.1, 2.5, shape) * rng.choice([-1, 1], shape)
    return np.where(np.abs(x - 1.5) < 0.1, x + 0.3, x)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_numpy_formula(name, device, rng):
    fn, reference, module = CASES[name]
    x = _inputs(rng)
    t = leaf(x, device)
    np.testing.assert_allclose(fn(t).numpy(), reference(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(module(t).numpy(), fn(t).numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_and_second_derivatives(name, device, rng):
    fn = CASES[name][0]
    check(fn, leaf(_inputs(rng), device))


@pytest.mark.parametrize("name", sorted(CASES))
def test_derivatives_of_non_contiguous_inputs(name, device, rng):
    fn = CASES[name][0]
    check(fn, leaf(_inputs(rng, (4, 3)), device, contiguous=False))


def test_softmax_axes(device, rng):
    x = rng.standard_normal((2, 3, 4))
    for axis in (0, 1, 2, -1, -2):
        t = leaf(x, device)
        np.testing.assert_allclose(F.softmax(t, axis).numpy(), _np_softmax(x, axis), rtol=1e-12)
        np.testing.assert_allclose(
            F.log_softmax(t, axis=axis).numpy(), np.log(_np_softmax(x, axis)), rtol=1e-12
        )
        check(lambda a, axis=axis: F.log_softmax(a, axis), t)
    np.testing.assert_allclose(F.softmax(leaf(x, device), 1).numpy().sum(axis=1), 1, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_inputs_stay_finite(name, dtype, device):
    fn = CASES[name][0]
    x = gg.tensor([[-1e4, -50.0, 0.5, 50.0, 1e4]], dtype=dtype, device=device, requires_grad=True)
    out = fn(x)
    out.backward(gg.ones_like(out))
    assert np.isfinite(out.numpy()).all(), out.numpy()
    assert np.isfinite(x.grad.numpy()).all(), x.grad.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_of_extreme_logits_is_correct(dtype, device):
    x = gg.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=dtype, device=device)
    np.testing.assert_allclose(F.softmax(x).numpy(), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(
        F.log_softmax(x).numpy(),
        [[0, -2e4, -1e4], [-np.log(3)] * 3],
        rtol=1e-6,
    )
    np.testing.assert_allclose(F.sigmoid(x).numpy()[0], [1, 0, 0.5])
    np.testing.assert_allclose(F.softplus(x).numpy()[0], [1e4, 0, np.log(2)], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_stays_float32(name, device, rng):
    fn = CASES[name][0]
    x = gg.tensor(_inputs(rng).astype(np.float32), device=device, requires_grad=True)
    out = fn(x)
    out.backward(gg.ones_like(out))
    assert out.dtype == np.float32
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), CASES[name][1](x.numpy().astype(np.float64)), rtol=1e-5)


def test_erf(device):
    x = np.linspace(-7, 7, 2001)
    got = gg.ops.erf(gg.tensor(x, dtype="float64", device=device)).numpy()
    np.testing.assert_allclose(got, _erf(x), rtol=0, atol=2e-15)
    single = gg.ops.erf(gg.tensor(x, dtype="float32", device=device))
    assert single.dtype == np.float32
    np.testing.assert_allclose(single.numpy(), _erf(x), rtol=0, atol=1e-6)
    check(gg.ops.erf, leaf(np.array([-3.0, -0.5, 0.2, 1.9, 2.1, 4.0]), device))


def test_tensor_methods_and_top_level_names(device, rng):
    x = rng.standard_normal((2, 5))
    t = leaf(x, device)
    np.testing.assert_allclose(t.relu().numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(t.sigmoid().numpy(), _np_sigmoid(x), rtol=1e-12)
    np.testing.assert_allclose(t.tanh().numpy(), np.tanh(x), rtol=1e-12)
    np.testing.assert_allclose(t.softmax(axis=0).numpy(), _np_softmax(x, 0), rtol=1e-12)
    np.testing.assert_allclose(t.log_softmax().numpy(), np.log(_np_softmax(x, -1)), rtol=1e-12)
    np.testing.assert_allclose(gg.softmax(t, 1).numpy(), _np_softmax(x, 1), rtol=1e-12)
    for name in ("relu", "sigmoid", "tanh", "log_softmax"):
        assert np.array_equal(getattr(gg, name)(t).numpy(), getattr(F, name)(t).numpy())


def test_module_reprs():
    assert repr(nn.activation.LeakyReLU(0.1)) == "LeakyReLU(negative_slope=0.1)"
    assert repr(GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(Softmax(1)) == "Softmax(axis=1)"
    assert repr(ReLU()) == "ReLU()"


def test_bad_arguments(device):
    x = gg.ones((2, 3), device=device)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="erf")
    with pytest.raises(ValueError, match="approximate"):
        GELU("fast")
    with pytest.raises(gg.ShapeError, match=r"axis 2 .*\(2, 3\)"):
        F.softmax(x, axis=2)
    with pytest.raises(gg.ShapeError, match="axis"):
        F.log_softmax(gg.tensor(1.0, device=device), axis=1)  # 0-d: only 0 and -1
    with pytest.raises(ValueError, match="beta"):
        F.softplus(x, beta=0)


# --- the primitives on their own --------------------------------------------------------
def _np_gelu_tanh_grad(x):
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)


# name -> (param, forward(x), dL/dx(g, x)), each written out in plain NumPy.
PRIMITIVES = {
    "relu": (None, lambda x: np.maximum(x, 0), lambda g, x: g * (x > 0)),
    "leaky_relu": (0.3, lambda x: np.where(x > 0, x, 0.3 * x), lambda g, x: g * (x > 0) + g * 0.3 * (x <= 0)),  # noqa: E501
    "elu": (0.7, lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)), lambda g, x: g * np.where(x > 0, 1, 0.7 * np.exp(x))),  # noqa: E501
    "gelu": (None, lambda x: x * (1 + _erf(x / np.sqrt(2))) / 2, lambda g, x: g * ((1 + _erf(x / np.sqrt(2))) / 2 + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi))),  # noqa: E501
    "gelu_tanh": (None, _np_gelu_tanh, lambda g, x: g * _np_gelu_tanh_grad(x)),
    "silu": (None, lambda x: x * _np_sigmoid(x), lambda g, x: g * (_np_sigmoid(x) * (1 + x * (1 - _np_sigmoid(x))))),  # noqa: E501
    "sigmoid": (None, _np_sigmoid, lambda g, x: g * _np_sigmoid(x) * (1 - _np_sigmoid(x))),
    "tanh": (None, np.tanh, lambda g, x: g / np.cosh(x) ** 2),
    "softplus": ((1.5, 2.0), lambda x: np.where(1.5 * x > 2, x, np.log1p(np.exp(1.5 * x)) / 1.5), lambda g, x: g * np.where(1.5 * x > 2, 1, _np_sigmoid(1.5 * x))),  # noqa: E501
    "softmax": (1, lambda x: _np_softmax(x, 1), lambda g, x: _np_softmax(x, 1) * (g - (g * _np_softmax(x, 1)).sum(1, keepdims=True))),  # noqa: E501
    "log_softmax": (0, lambda x: np.log(_np_softmax(x, 0)), lambda g, x: g - _np_softmax(x, 0) * g.sum(0, keepdims=True)),  # noqa: E501
}  # fmt: skip


def _compare_primitive(backend, name, param, forward, backward, x, g):
    """Run the backend's fused forward and backward on raw arrays; compare with NumPy."""
    xa, ga = backend.asarray(x), backend.asarray(g)
    out = backend.activation_forward(name, xa, param)
    got = backend.activation_backward(name, ga, xa, out, param)
    np.testing.assert_allclose(backend.to_numpy(out), forward(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(got), backward(g, x), rtol=1e-10, atol=1e-14)


def test_every_activation_has_a_primitive_test():
    assert set(PRIMITIVES) == set(get_backend("cpu").ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitives_match_numpy(name, device, rng):
    param, forward, backward = PRIMITIVES[name]
    x, g = _inputs(rng), rng.standard_normal((3, 4))
    _compare_primitive(get_backend(device), name, param, forward, backward, x, g)


def test_primitive_comparison_catches_a_wrong_formula(device, rng):
    backend = get_backend(device)
    x, g = _inputs(rng), rng.standard_normal((3, 4))
    # σ' written as σ(1+σ) instead of σ(1−σ): the comparison must reject it.
    wrong = lambda g, x: g * _np_sigmoid(x) * (1 + _np_sigmoid(x))  # noqa: E731
    with pytest.raises(AssertionError):
        _compare_primitive(backend, "sigmoid", None, _np_sigmoid, wrong, x, g)
    # A forward off by a little (GELU with 0.0447 in place of 0.044715) is caught too.
    off = lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.0447 * x**3)))  # noqa: E731
    with pytest.raises(AssertionError):
        _compare_primitive(backend, "gelu_tanh", None, off, PRIMITIVES["gelu_tanh"][2], x, g)


@pytest.mark.parametrize("name", ["gelu", "softplus", "softmax", "sigmoid"])
def test_primitives_keep_float32(name, device, rng):
    backend = get_backend(device)
    param = PRIMITIVES[name][0]
    x = backend.asarray(_inputs(rng).astype(np.float32))
    out = backend.activation_forward(name, x, param)
    assert out.dtype == np.float32
    assert backend.activation_backward(name, x, x, out, param).dtype == np.float32


# --- which route backward takes ----------------------------------------------------------
def test_backward_goes_through_the_backend_primitive(device, monkeypatch, rng):
    backend = get_backend(device)
    calls = []
    fused = backend.activation_backward

    def spy(name, *args):
        calls.append(name)
        return fused(name, *args)

    monkeypatch.setattr(backend, "activation_backward", spy)
    x = leaf(_inputs(rng), device)
    F.gelu(F.softplus(x)).sum().backward()
    # Where GELU runs on the array formulas, its backward reuses the forward's Φ(x) instead
    # (test_gelu_backward_from_the_kept_cdf_equals_the_primitive); a fused kernel is called.
    keeps_cdf = type(backend).activation_forward is ActivationPrimitives.activation_forward
    assert calls == (["softplus"] if keeps_cdf else ["gelu", "softplus"])

    # With create_graph the formula runs on Tensors (gpugrad.ops), not on the primitive.
    calls.clear()
    (gx,) = gg.grad(F.silu(x).sum(), [x], create_graph=True)
    assert calls == [] and gx.requires_grad
    (gxx,) = gg.grad(gx.sum(), [x])
    s = _np_sigmoid(x.numpy())
    expected = s * (1 - s) * (2 + x.numpy() * (1 - 2 * s))  # silu''
    np.testing.assert_allclose(gxx.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_backward_from_the_kept_cdf_equals_the_primitive(device, rng, dtype):
    x = gg.tensor((rng.standard_normal(1000) * 4).astype(dtype), device=device)
    g = gg.tensor(rng.standard_normal(1000).astype(dtype), device=device)
    x.requires_grad_()
    F.gelu(x).backward(g)
    backend = get_backend(device)
    assert x.grad.dtype == dtype
    if dtype == "float64":
        expected = backend.activation_backward("gelu", g.data, x.data, None)
        np.testing.assert_allclose(
            x.grad.numpy(), backend.to_numpy(expected), rtol=1e-14, atol=1e-30
        )
        return
    # float32: the kept Φ may come from another route than the primitive's (a compiled CPU
    # kernel, a GPU kernel). Φ in float32 is good to an absolute NORMAL32_ERROR·2^-24 (so in
    # the far left tail, where Φ and x·φ nearly cancel, the result is absolute-accurate only),
    # and the rest of the formula to a few float32 ulps of its terms.
    x64, g64 = x.numpy().astype(np.float64), g.numpy().astype(np.float64)
    cdf = get_backend("cpu").normal_cdf(x64)
    density = np.exp(-0.5 * x64 * x64) / np.sqrt(2 * np.pi)
    exact = g64 * (cdf + x64 * density)
    eps = np.finfo(np.float32).eps
    phi_error = (special_math.NORMAL32_ERROR + 0.5) * 2.0**-24
    terms = 4 * eps * (cdf + np.abs(x64) * density)
    # (plus the smallest normal float32: far out, x·φ(x) is subnormal or 0 in float32)
    bound = np.abs(g64) * (phi_error + terms) + np.finfo(np.float32).tiny
    assert np.all(np.abs(x.grad.numpy() - exact) <= bound)


# --- PyTorch, when installed, as a second reference --------------------------------------
TORCH_CALLS = {
    "relu": lambda tf, t: tf.relu(t),
    "leaky_relu": lambda tf, t: tf.leaky_relu(t, 0.2),
    "elu": lambda tf, t: tf.elu(t, 1.5),
    "gelu": lambda tf, t: tf.gelu(t),
    "gelu_tanh": lambda tf, t: tf.gelu(t, approximate="tanh"),
    "silu": lambda tf, t: tf.silu(t),
    "sigmoid": lambda tf, t: tf.sigmoid(t),
    "tanh": lambda tf, t: tf.tanh(t),
    "softplus": lambda tf, t: tf.softplus(t, beta=2.0, threshold=3.0),
    "softmax": lambda tf, t: tf.softmax(t, dim=0),
    "log_softmax": lambda tf, t: tf.log_softmax(t, dim=-1),
}


def test_against_torch(device, rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = np.concatenate([_inputs(rng), [[-1e4, 1e4, -30.0, 30.0]]])
    g = rng.standard_normal(x.shape)
    for name, (fn, _, _) in CASES.items():
        t = leaf(x, device)
        out = fn(t)
        out.backward(gg.tensor(g, dtype="float64", device=device))
        tt = torch.tensor(x, requires_grad=True)
        ref = TORCH_CALLS[name](tf, tt)
        ref.backward(torch.tensor(g))
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-10, atol=1e-14)
