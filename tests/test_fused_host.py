"""The CuPy backend's kernel wiring, checked on the CPU with the real kernels built for the host.

`FusedPrimitives` (gpugrad/backend/fused_primitives.py) turns each primitive call into a kernel
name and an argument tuple. On a GPU the tuple goes to `cupy.RawModule`; here it goes to the very
same kernels of kernels/*.cu compiled with g++ through the launch shim (tests/kernels_host/), and
every argument is first checked against the kernel's C signature the way CuPy would pass it: an
array as a pointer (C-contiguous, the element type the kernel declares), Python int as
`long long`, Python float as `double`, and NumPy scalars as their own type. A `float` given to a
`double` parameter, a missing flag or a swapped pointer fails here as it would corrupt results on
the GPU.

The results are compared with the NumPy twins, primitive by primitive, and end to end: a model
trained with every CPU primitive routed through the kernels learns as the plain NumPy one does,
and its optimizer step is one kernel launch per parameter group.
"""

from __future__ import annotations

import numpy as np
import pytest
from host_kernels import HostFusedBackend

import gpugrad as gg
from gpugrad import nn
from gpugrad.backend import get_backend
from gpugrad.backend.device import Device
from gpugrad.backend.fused_primitives import (
    ACTIVATION_KERNELS,
    BIAS_ACTIVATION_KERNELS,
    FusedPrimitives,
    kernel_names,
)


@pytest.fixture
def fused(host_kernels) -> HostFusedBackend:
    return HostFusedBackend(host_kernels)


def test_every_kernel_the_backend_launches_exists(host_kernels) -> None:
    assert kernel_names() <= set(host_kernels), sorted(kernel_names() - set(host_kernels))


# --- activations -------------------------------------------------------------------------------
ACTIVATION_PARAMS = {
    "leaky_relu": 0.05,
    "elu": 0.7,
    "softplus": (1.5, 10.0),
}
DTYPES = [np.float32, np.float64]


def _tol(dtype) -> dict:
    # This file checks the wiring; tests/test_kernels.py bounds the math itself in ulps. The
    # float32 twins round after every NumPy operation, a few ulps off the kernels' libm math.
    return {"rtol": 3e-5, "atol": 3e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(ACTIVATION_KERNELS))
def test_activation_kernels_match_twins(fused, rng, name, dtype) -> None:
    cpu = get_backend("cpu")
    param = ACTIVATION_PARAMS.get(name)
    # A transposed (non-contiguous) input and a broadcast gradient: the backend must hand the
    # kernels contiguous copies.
    x = (rng.standard_normal((7, 33)) * 4).astype(dtype).T
    g = np.broadcast_to(rng.standard_normal((1, 7)).astype(dtype), x.shape)
    out = fused.activation_forward(name, x, param)
    ref_out = cpu.activation_forward(name, x, param)
    np.testing.assert_allclose(out, ref_out, **_tol(dtype))
    assert out.dtype == dtype and out.shape == x.shape
    dx = fused.activation_backward(name, g, x, ref_out, param)
    np.testing.assert_allclose(
        dx, cpu.activation_backward(name, g, x, ref_out, param), **_tol(dtype)
    )
    suffix = "f32" if dtype == np.float32 else "f64"
    assert fused.launched == [
        f"activation_forward_{name}_{suffix}",
        f"activation_backward_{name}_{suffix}",
    ]


def _assert_f16_close(got: np.ndarray, ref32: np.ndarray) -> None:
    """`got` (float16) within 1 binary16 ulp of `ref32` (a float32 twin result) rounded to
    float16, or within the float32 check's absolute tolerance of it: where the float32 math
    cancels (gelu_tanh near x = -5, f ~ 1e-6) kernel and twin already differ by more than a
    binary16 ulp before rounding (tests/test_kernels.py bounds that)."""
    assert got.dtype == np.float16
    keys = []
    for a in (got, ref32.astype(np.float16)):
        b = np.ascontiguousarray(a).view(np.uint16).astype(np.int32)
        keys.append(np.where(b & 0x8000, -(b & 0x7FFF), b))  # value order, ±0 the same
    ulps = np.abs(keys[0] - keys[1])
    near = np.abs(got.astype(np.float64) - ref32) <= _tol(np.float32)["atol"]
    bad = (ulps > 1) & ~near
    assert not bad.any(), f"{bad.sum()} beyond 1 ulp: {got[bad][:5]} for {ref32[bad][:5]}"


@pytest.mark.parametrize("name", sorted(ACTIVATION_KERNELS))
def test_f16_activation_kernels_match_float32_twin(fused, rng, name) -> None:
    """float16 arrays run the f16 kernels (math in float32, one rounding): each result is within
    1 binary16 ulp of the float32 twin on the same float16 values, rounded to float16. The
    backward reads the kernel's own float16 forward output, as autograd saves it."""
    cpu = get_backend("cpu")
    param = ACTIVATION_PARAMS.get(name)
    x = (rng.standard_normal((7, 33)) * 4).astype(np.float16).T
    g = np.broadcast_to(rng.standard_normal((1, 7)).astype(np.float16), x.shape)
    out = fused.activation_forward(name, x, param)
    assert out.dtype == np.float16 and out.shape == x.shape
    _assert_f16_close(out, cpu.activation_forward(name, x.astype(np.float32), param))
    dx = fused.activation_backward(name, g, x, out, param)
    g32, x32, out32 = (a.astype(np.float32) for a in (g, x, out))
    _assert_f16_close(dx, cpu.activation_backward(name, g32, x32, out32, param))
    assert fused.launched == [f"activation_forward_{name}_f16", f"activation_backward_{name}_f16"]


@pytest.mark.parametrize("name", ["relu", "gelu"])
def test_zero_dimensional_arrays_keep_their_shape(fused, name) -> None:
    x = np.array(1.5)
    out = fused.activation_forward(name, x)
    dx = fused.activation_backward(name, np.array(2.0), x, out)
    assert out.shape == () and dx.shape == ()
    np.testing.assert_allclose(dx, get_backend("cpu").activation_backward(name, 2.0, x, out))


def test_activation_into_writes_the_given_array(fused, rng) -> None:
    x = rng.standard_normal(100).astype(np.float32)
    into = np.full_like(x, np.nan)
    assert fused.activation_forward("gelu", x, into=into) is into
    np.testing.assert_allclose(
        into, get_backend("cpu").activation_forward("gelu", x), **_tol(x.dtype)
    )
    with pytest.raises(ValueError, match="C-contiguous float32 array of shape"):
        fused.activation_forward("gelu", x, into=np.empty(99, np.float32))


def test_activation_cases_without_kernels_fall_back(fused, rng) -> None:
    x = rng.standard_normal((3, 4))
    fused.activation_forward("softmax", x, 1)
    fused.activation_forward("softmax", x.astype(np.float16), 1)
    # A saved array of another dtype than the gradient: no kernel takes that mix.
    x16 = x.astype(np.float16)
    fused.activation_backward("gelu", x16, x.astype(np.float32), None)
    # float16 has activation kernels only: cross-entropy and optimizer steps use the twin.
    labels = np.array([0, 3, 1])
    loss = fused.softmax_cross_entropy_forward(x16, labels)
    assert loss.dtype == np.float16
    fused.softmax_cross_entropy_backward(np.ones(3, np.float16), x16, labels)
    p16, m16 = x16.copy(), np.zeros_like(x16)
    fused.sgd_step(p16, x16, m16, 0.1, momentum=0.9)
    fused.adam_step(p16, x16, m16, np.zeros_like(x16), None, 1, 1e-3)
    assert fused.launched == []


@pytest.mark.parametrize("name", BIAS_ACTIVATION_KERNELS)
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (5, 7), (33, 130)])
def test_f16_bias_activation_kernels_match_float32_twin(fused, rng, name, rows, cols) -> None:
    """f(z + bias) in float32, rounded once: within 1 binary16 ulp of the float32 twin on the
    same float16 values."""
    z = (rng.standard_normal((rows, cols)) * 3).astype(np.float16)
    bias = rng.standard_normal(cols).astype(np.float16)
    got = fused.bias_activation_forward(name, z.copy(), bias)
    assert got.shape == z.shape
    cpu = get_backend("cpu")
    _assert_f16_close(
        got, cpu.bias_activation_forward(name, z.astype(np.float32), bias.astype(np.float32))
    )
    assert fused.launched == [f"bias_activation_forward_{name}_f16"]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", BIAS_ACTIVATION_KERNELS)
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (5, 7), (33, 130)])
def test_bias_activation_kernels_match_twins(fused, rng, name, rows, cols, dtype) -> None:
    z = (rng.standard_normal((rows, cols)) * 3).astype(dtype)
    bias = rng.standard_normal(cols).astype(dtype)
    got = fused.bias_activation_forward(name, z.copy(), bias)
    ref = get_backend("cpu").bias_activation_forward(name, z.copy(), bias)
    np.testing.assert_allclose(got, ref, **_tol(dtype))
    suffix = "f32" if dtype == np.float32 else "f64"
    assert fused.launched == [f"bias_activation_forward_{name}_{suffix}"]


# --- softmax cross-entropy ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize(("rows", "classes"), [(1, 1), (9, 10), (37, 3), (5, 130)])
def test_softmax_cross_entropy_kernels_match_twins(fused, rng, rows, classes, smoothing, dtype):
    cpu = get_backend("cpu")
    logits = (rng.standard_normal((rows, classes)) * 5).astype(dtype)
    labels = rng.integers(0, classes, rows)
    labels[::4] = -100  # ignored rows
    loss = fused.softmax_cross_entropy_forward(logits, labels, -100, smoothing)
    np.testing.assert_allclose(
        loss, cpu.softmax_cross_entropy_forward(logits, labels, -100, smoothing), **_tol(dtype)
    )
    g = np.asarray(0.25, dtype=dtype)  # the gradient of a mean arrives as a broadcast scalar
    grad = fused.softmax_cross_entropy_backward(g, logits, labels, -100, smoothing)
    ref = cpu.softmax_cross_entropy_backward(
        np.broadcast_to(g, (rows,)), logits, labels, -100, smoothing
    )
    np.testing.assert_allclose(grad, ref, **_tol(dtype))
    suffix = "f32" if dtype == np.float32 else "f64"
    assert fused.launched == [
        f"softmax_cross_entropy_forward_{suffix}",
        f"softmax_cross_entropy_backward_{suffix}",
    ]


def test_softmax_cross_entropy_kernel_marks_bad_labels_with_nan(fused) -> None:
    logits = np.zeros((3, 4), np.float32)
    loss = fused.softmax_cross_entropy_forward(logits, np.array([0, 7, -100]))
    assert np.isfinite(loss[0]) and np.isnan(loss[1]) and loss[2] == 0


# --- optimizers --------------------------------------------------------------------------------
OPTIMIZER_CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("sgd", {"lr": 0.1, "momentum": 0.8, "dampening": 0.3}),
    ("adam", {"lr": 1e-2}),
    ("adam", {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}),
    ("adamw", {"lr": 1e-2, "weight_decay": 0.1}),
    ("rmsprop", {"lr": 1e-2}),
    ("rmsprop", {"lr": 1e-2, "centered": True, "momentum": 0.9, "weight_decay": 0.01}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01}),
]
OPTIMIZERS = {
    "sgd": gg.optim.SGD,
    "adam": gg.optim.Adam,
    "adamw": gg.optim.AdamW,
    "rmsprop": gg.optim.RMSprop,
    "adagrad": gg.optim.Adagrad,
}


def _train(steps: int, opt_name: str, options: dict, set_to_none: bool, dtype=np.float32):
    """A small classifier trained for `steps` steps; returns the losses and final weights."""
    gg.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 4)).to(dtype=dtype)  # fmt: skip
    data = np.random.default_rng(5)
    x = gg.tensor(data.standard_normal((32, 6)), dtype=dtype)
    y = gg.tensor(data.integers(0, 4, 32))
    opt = OPTIMIZERS[opt_name](model.parameters(), **options)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=set_to_none)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("set_to_none", [True, False], ids=["grad-pieces", "grad-bank"])
@pytest.mark.parametrize(("opt_name", "options"), OPTIMIZER_CASES)
def test_training_through_the_kernels_matches_numpy(monkeypatch, host_kernels, opt_name, options,
                                                    set_to_none) -> None:  # fmt: skip
    ref_losses, ref_params = _train(5, opt_name, options, set_to_none)
    backend = HostFusedBackend(host_kernels)
    monkeypatch.setitem(gg.backend._backends, Device("cpu"), backend)
    losses, params = _train(5, opt_name, options, set_to_none)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for p, ref in zip(params, ref_params):
        np.testing.assert_allclose(p, ref, rtol=1e-4, atol=1e-5)
    kernel = {"adamw": "adam"}.get(opt_name, opt_name)
    # One launch per step for the whole group of 6 parameters, not one per parameter.
    assert backend.launched.count(f"{kernel}_step_f32") == 5
    for name in (
        "activation_backward_gelu_f32",
        "activation_backward_relu_f32",
        "softmax_cross_entropy_forward_f32",
        "softmax_cross_entropy_backward_f32",
    ):
        assert backend.launched.count(name) == 5, name  # fmt: skip


def test_optimizer_kernels_match_twins_per_parameter(fused, rng) -> None:
    """The per-parameter path: a (3, 5) array and its gradient, in place, float64."""
    cpu = get_backend("cpu")
    p0 = rng.standard_normal((3, 5))
    grads = [rng.standard_normal((3, 5)) for _ in range(3)]
    results = []
    for backend in (cpu, fused):
        p, m, v, vmax = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
        for step, g in enumerate(grads, start=1):
            backend.adam_step(p, g, m, v, vmax, step, 1e-2, amsgrad=True, weight_decay=0.1)
        results.append((p, m, v, vmax))
    for got, ref in zip(results[1], results[0]):
        np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-16)
    assert fused.launched == ["adam_step_f64"] * 3


def test_fused_sequential_derivatives_against_finite_differences(monkeypatch, host_kernels):
    """Sequential on a fused backend builds LinearActivation nodes; their first and second
    derivatives, run through the kernels, match finite differences (float64)."""
    monkeypatch.setitem(gg.backend._backends, Device("cpu"), HostFusedBackend(host_kernels))
    gg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.Sigmoid()).double()
    x = gg.tensor(np.random.default_rng(1).standard_normal((6, 3)), requires_grad=True)
    assert type(model(x).grad_fn).__name__ == "LinearActivation"
    params = list(model.parameters())
    assert gg.gradcheck(lambda x, *ps: model(x), (x, *params))
    assert gg.gradgradcheck(lambda x, *ps: model(x), (x, *params))


def test_the_plain_numpy_backend_is_not_the_fused_one() -> None:
    assert not isinstance(get_backend("cpu"), FusedPrimitives)
