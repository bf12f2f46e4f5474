"""Adadelta, Adamax and NAdam: torch.optim's trajectories over 25 steps in float64, the flat
path against the per-parameter path, state_dict round trips, defaults and bad options."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import optim

SHAPES = [(3, 4), (4,), (), (2, 1, 3)]
STEPS = 25

CASES = [
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.1}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "momentum_decay": 0.05}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in CASES]


def weights_and_grads(rng, steps=STEPS):
    weights = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return weights, grads


def run(name, options, device, weights, grads, flat=True, opt=None, params=None):
    if params is None:
        params = [gg.tensor(w, dtype="float64", device=device, requires_grad=True) for w in weights]
    opt = opt or getattr(optim, name)(params, flat=flat, **options)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = gg.tensor(g, dtype="float64", device=device)
        opt.step()
    return params, opt


@pytest.fixture
def torch64():
    """torch with float64 as its default dtype, so NAdam's mu_product is kept in double."""
    torch = pytest.importorskip("torch")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(before)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("flat", [True, False])
def test_matches_torch_optim(name, options, flat, device, rng, torch64):
    torch = torch64
    weights, grads = weights_and_grads(rng)
    params, _ = run(name, options, device, weights, grads, flat=flat)
    tparams = [torch.tensor(w, requires_grad=True) for w in weights]
    topt = getattr(torch.optim, name)(tparams, **options)
    for step_grads in grads:
        for p, g in zip(tparams, step_grads):
            p.grad = torch.tensor(g)
        topt.step()
    for p, t, w in zip(params, tparams, weights):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-10)
        assert not np.allclose(p.numpy(), w)  # it did move


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_flat_and_per_parameter_paths_are_identical(name, options, device, rng):
    weights, grads = weights_and_grads(rng, steps=6)
    grads[2][1] = None  # one parameter skips a step: its bank updates one by one then
    results = []
    for flat in (True, False):
        params = [gg.tensor(w, dtype="float64", device=device, requires_grad=True) for w in weights]
        opt = getattr(optim, name)(params, flat=flat, **options)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = None if g is None else gg.tensor(g, dtype="float64", device=device)
            opt.step()
        results.append([p.numpy().copy() for p in params])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_state_dict_round_trip_continues_identically(name, options, device, rng):
    weights, grads = weights_and_grads(rng, steps=8)
    expected, _ = run(name, options, device, weights, grads)
    first, opt = run(name, options, device, weights, grads[:4])
    saved = opt.state_dict()
    assert set(saved["state"][0]) == {"step", *opt._state_names(opt.param_groups[0])}
    params = [gg.tensor(p.numpy(), dtype="float64", device=device) for p in first]
    for p in params:
        p.requires_grad_(True)
    fresh = getattr(optim, name)(params, **{**options, "lr": 123.0})
    fresh.load_state_dict(saved)
    run(name, options, device, None, grads[4:], opt=fresh, params=params)
    for p, e in zip(params, expected):
        np.testing.assert_array_equal(p.numpy(), e.numpy())


def test_defaults_match_torch_optim():
    p = [gg.zeros(2, requires_grad=True)]
    assert optim.Adadelta(p).defaults == {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}
    assert optim.Adamax(p).defaults == {
        "lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0
    }  # fmt: skip
    assert optim.NAdam(p).defaults == {
        "lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
        "momentum_decay": 4e-3,
    }  # fmt: skip
    torch = pytest.importorskip("torch")
    tp = [torch.zeros(2, requires_grad=True)]
    for cls in (optim.Adadelta, optim.Adamax, optim.NAdam):
        theirs = getattr(torch.optim, cls.__name__)(tp).defaults
        for key, value in cls(p).defaults.items():
            assert theirs[key] == value, (cls.__name__, key)


def test_float32_parameters_stay_float32(device, rng):
    for name in ("Adadelta", "Adamax", "NAdam"):
        p = gg.tensor(rng.standard_normal(5), dtype="float32", device=device, requires_grad=True)
        opt = getattr(optim, name)([p])
        p.grad = gg.ones(5, dtype="float32", device=device)
        opt.step()
        assert (
            p.dtype == gg.float32
            and opt.state[p]["exp_avg" if name != "Adadelta" else "square_avg"].dtype == np.float32
        )


BAD_OPTIONS = [
    ("Adadelta", {"lr": -1.0}, "-1.0"),
    ("Adadelta", {"rho": 1.5}, "1.5"),
    ("Adadelta", {"eps": -1e-6}, "-1e-06"),
    ("Adadelta", {"weight_decay": -0.1}, "-0.1"),
    ("Adamax", {"lr": -0.5}, "-0.5"),
    ("Adamax", {"betas": (0.9, 1.0)}, "1.0"),
    ("Adamax", {"betas": (0.9,)}, "0.9"),
    ("Adamax", {"eps": -1.0}, "-1.0"),
    ("NAdam", {"betas": (-0.1, 0.9)}, "-0.1"),
    ("NAdam", {"momentum_decay": -0.004}, "-0.004"),
    ("NAdam", {"weight_decay": -2.0}, "-2.0"),
]


@pytest.mark.parametrize(("name", "options", "named"), BAD_OPTIONS)
def test_bad_options_raise_naming_the_value(name, options, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.").replace("(", r"\(")) as info:
        getattr(optim, name)([gg.zeros(2, requires_grad=True)], **options)
    assert next(iter(options)).split("_")[0] in str(info.value) or "learning rate" in str(
        info.value
    )


def test_the_fused_backend_runs_the_twin_formula(rng):
    # The CUDA backend has no kernel for these optimizers: its fused layer must fall back to
    # the NumPy-twin formula (on CuPy, stock CuPy kernels) and never launch one.
    from gpugrad.backend.fused_primitives import FusedPrimitives
    from gpugrad.backend.numpy_backend import NumpyBackend

    class NoKernels(FusedPrimitives, NumpyBackend):
        def launch_kernel(self, name, n, args):
            raise AssertionError(f"launched {name}")

    fused, plain = NoKernels(), NumpyBackend()
    for name, extra in (("adadelta_step", ()), ("adamax_step", (3,)), ("nadam_step", (3,))):
        param0, grads = rng.standard_normal(6), [rng.standard_normal(2), rng.standard_normal(4)]
        results = []
        for backend in (fused, plain):
            param, state = param0.copy(), [np.full(6, 0.5), np.full(6, 0.25)]
            getattr(backend, name)(param, grads, *state, *extra, 0.1, weight_decay=0.1)
            results.append(param)
        np.testing.assert_array_equal(*results)
        assert not np.array_equal(results[0], param0)
